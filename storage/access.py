"""Access to stored read data by people: plate search and reads by id, checked and audited."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drivers.clock import Clock
from storage import counters as counters_mod
from storage.audit_log import AuditLog
from storage.crypto import KeyHierarchy, normalise_plate
from storage.daykeys import DayKeys
from storage.db import Database
from storage.errors import AccessDenied, KeyDestroyed
from storage.records import ReadRecord
from storage.retention import day_of
from storage.sealed import SealedRows


class Access:
    def __init__(
        self,
        db: Database,
        day_keys: DayKeys,
        sealed: SealedRows,
        keys: KeyHierarchy,
        audit: AuditLog,
        search_roles: tuple[str, ...],
        clock: Clock,
    ) -> None:
        self._db = db
        self._day_keys = day_keys
        self._sealed = sealed
        self._keys = keys
        self._audit = audit
        self._search_roles = search_roles
        self._clock = clock

    def search_plate(self, text: str, actor: str, role: str, reason: str) -> list[ReadRecord]:
        """Reads of a plate still within retention, newest first, with their images.

        Uses only the blind index (one HMAC per live day key). Refused unless ``role`` is in
        ``search_roles`` and a reason is given; granted and refused searches are both audited
        (the searched plate appears in the audit only as a keyed pseudonym) and counted.
        """
        query = normalise_plate(text)
        detail: dict[str, Any] = {"query": self._keys.pseudonym(query)}
        today = day_of(self._clock.utcnow())
        if role not in self._search_roles or len(reason.strip()) < 3 or not query:
            why = "empty query" if not query else "role not allowed or no reason given"
            self._record_search(
                today, actor, role, reason, "denied", {**detail, "why": why}, "searches_denied"
            )
            raise AccessDenied(f"plate search refused: {why}")
        with self._db.locked():
            wanted = {c.blind_index(query): day for day, c in self._day_keys.live().items()}
            rows = list(
                self._db.rows_in(
                    "SELECT read_id, day, plate_idx, payload FROM reads"
                    " WHERE plate_idx IN ({marks}) ORDER BY seq DESC",
                    list(wanted),
                )
            )
            matching = [r for r in rows if wanted.get(r[2]) == r[1]]
            images = self._sealed.images([r[0] for r in matching])
        results = []
        for rid, day, _idx, sealed in matching:
            p = self._sealed.open_read((day, sealed), rid)
            if normalise_plate(p["plate_text"]) != query:
                continue
            results.append(self._sealed.record(p, rid, day, images.get(rid, {})))
        self._record_search(
            today, actor, role, reason, "ok", {**detail, "results": len(results)}, "searches"
        )
        return results

    def _record_search(
        self,
        today: str,
        actor: str,
        role: str,
        reason: str,
        result: str,
        detail: dict[str, Any],
        counter: str,
    ) -> None:
        with self._db.transaction() as conn:
            counters_mod.bump(conn, today, **{counter: 1})
            self._audit.append_in(conn, actor, role, "plate.search", reason, result, detail)

    def get_reads(
        self, read_ids: Sequence[str], actor: str, role: str, reason: str
    ) -> list[ReadRecord]:
        """Decrypt reads by id (with images), audited. Missing or purged ids are skipped;
        a read that fails authentication raises :class:`TamperDetected`."""
        with self._db.locked():
            rows = self._sealed.read_payloads(read_ids)
            images = self._sealed.images(list(rows))
        out = []
        for rid in read_ids:
            row = rows.get(rid)
            if row is None:
                continue
            try:
                p = self._sealed.open_read(row, rid)
            except KeyDestroyed:
                continue
            out.append(self._sealed.record(p, rid, row[0], images.get(rid, {})))
        self._audit.append(
            actor,
            role,
            "reads.get",
            reason,
            "ok",
            {"requested": len(read_ids), "results": len(out)},
        )
        return out
