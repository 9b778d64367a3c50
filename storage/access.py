"""Access to stored read data by people: plate search and reads by id, checked and audited.

The one path to read data for a person: every method takes a :class:`storage.roles.Caller`
(person, role, reason), refuses unless the role is in ``search_roles`` and the reason holds a
case number, and writes a granted or refused entry to the audit chain with that person as the
actor. Nothing else in ``storage`` opens a read for a person (the uplink's outbox opens reads
to send them to the agency, audited as data leaving the unit).
"""

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
from storage.roles import Caller
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

    def search_plate(self, text: str, caller: Caller) -> list[ReadRecord]:
        """Reads of a plate still within retention, newest first, with their images.

        Uses only the blind index (one HMAC per live day key). Refused (:class:`AccessDenied`)
        unless the caller's role is in ``search_roles`` and the reason holds a case number;
        granted and refused searches are both audited (the searched plate appears in the audit
        only as a keyed pseudonym) and counted.
        """
        query = normalise_plate(text)
        detail: dict[str, Any] = {"query": self._keys.pseudonym(query)}
        today = day_of(self._clock.utcnow())
        why = caller.refusal(self._search_roles) or (None if query else "empty query")
        if why is not None:
            self._record(today, caller, "plate.search", "denied", {**detail, "why": why},
                         "searches_denied")
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
        self._record(today, caller, "plate.search", "ok", {**detail, "results": len(results)},
                     "searches")
        return results

    def _record(
        self,
        today: str,
        caller: Caller,
        action: str,
        result: str,
        detail: dict[str, Any],
        counter: str | None,
    ) -> None:
        with self._db.transaction() as conn:
            if counter is not None:
                counters_mod.bump(conn, today, **{counter: 1})
            self._audit.append_in(
                conn, caller.person, caller.role.value, action, caller.reason, result, detail
            )

    def get_reads(self, read_ids: Sequence[str], caller: Caller) -> list[ReadRecord]:
        """Decrypt reads by id (with images), checked like a search and audited. Missing or
        purged ids are skipped; a read that fails authentication raises
        :class:`TamperDetected`. The audit entry is written before anything is decrypted."""
        today = day_of(self._clock.utcnow())
        why = caller.refusal(self._search_roles)
        if why is not None:
            self._record(today, caller, "reads.get", "denied",
                         {"requested": len(read_ids), "why": why}, "searches_denied")
            raise AccessDenied(f"reads by id refused: {why}")
        self._record(today, caller, "reads.get", "ok", {"requested": len(read_ids)}, None)
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
        return out
