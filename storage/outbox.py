"""The outbox: what the uplink must still deliver, in order, and its acknowledgements."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from drivers.clock import Clock
from storage import codec
from storage import counters as counters_mod
from storage.audit_log import SYSTEM_ACTOR, SYSTEM_ROLE, AuditLog
from storage.db import Database
from storage.errors import KeyDestroyed, TamperDetected
from storage.health import HealthFlags
from storage.records import OutboxItem
from storage.retention import day_of
from storage.sealed import SealedRows

log = logging.getLogger(__name__)

#: ``failed_reason`` of an item the agency rejected for good (the dead-letter state); items
#: that failed authentication carry ``tamper: ...`` instead.
DEAD_LETTER_PREFIX = "rejected: "


@dataclass(frozen=True, slots=True)
class DeadLetter:
    item_id: str
    kind: str
    read_id: str
    day: str
    attempts: int
    reason: str


class Outbox:
    def __init__(
        self,
        db: Database,
        sealed: SealedRows,
        audit: AuditLog,
        flags: HealthFlags,
        clock: Clock,
    ) -> None:
        self._db = db
        self._sealed = sealed
        self._audit = audit
        self._flags = flags
        self._clock = clock

    def next_batch(
        self, max_items: int, max_bytes: int, include_images: bool = False
    ) -> list[OutboxItem]:
        """Pending items, alerts first (highest priority first), then reads oldest first.

        Stops before ``max_bytes`` of JSON payload (always at least one item, so one large item
        cannot block the queue). Items that no longer decrypt are set aside as failed,
        counted in health, and audited, rather than retried forever.
        """
        if max_items <= 0:
            return []
        with self._db.locked() as conn:
            rows = conn.execute(
                "SELECT item_id, kind, read_id, day, attempts FROM outbox"
                " WHERE sent_at IS NULL AND failed_reason IS NULL"
                " ORDER BY rank, priority DESC, created_seq LIMIT ?",
                (max_items,),
            ).fetchall()
            read_ids = sorted({r[2] for r in rows})
            reads = self._sealed.read_payloads(read_ids)
            alerts = self._sealed.alert_payloads([r[0] for r in rows if r[1] == "alert"])
            images = self._sealed.images(read_ids) if include_images else {}
        items: list[OutboxItem] = []
        failed: list[tuple[str, str]] = []
        total = 0
        for item_id, kind, read_id, day, attempts in rows:
            try:
                read_p = self._sealed.open_read(reads.get(read_id), read_id)
                if kind == "alert":
                    alert_p = self._sealed.open_alert(alerts.get(item_id), item_id)
                    payload: dict[str, Any] = dict(alert_p)
                    payload["read"] = read_p
                    created = datetime.fromisoformat(alert_p["raised_at"])
                else:
                    payload = read_p
                    created = datetime.fromisoformat(read_p["captured_at"])
                if include_images:
                    for kind_img, sealed in images.get(read_id, {}).items():
                        data = self._sealed.open_image(sealed, read_id, kind_img, day)
                        payload = dict(payload)
                        payload[f"{kind_img}_jpeg_b64"] = codec.b64(data)
            except KeyDestroyed:
                continue  # purge is deleting this day's rows right now
            except TamperDetected as e:
                failed.append((item_id, f"tamper: {e}"))
                continue
            size = len(codec.to_json(payload))
            if items and total + size > max_bytes:
                break
            total += size
            items.append(OutboxItem(item_id, kind, read_id, payload, created, attempts))
        if failed:
            self._set_aside(failed)
        return items

    def _set_aside(self, failed: list[tuple[str, str]]) -> None:
        with self._db.lock:
            with self._db.transaction() as conn:
                conn.executemany(
                    "UPDATE outbox SET failed_reason = ? WHERE item_id = ?",
                    [(why, iid) for iid, why in failed],
                )
                self._audit.append_in(
                    conn,
                    SYSTEM_ACTOR,
                    SYSTEM_ROLE,
                    "outbox.undecryptable",
                    "item failed authentication",
                    "set_aside",
                    {"items": len(failed)},
                )
            self._flags.undecryptable_items += len(failed)
        log.error("outbox items failed authentication", extra={"items": len(failed)})

    def mark_sent(self, item_ids: Iterable[str]) -> int:
        """Mark items acknowledged by the server. Idempotent: returns how many were newly
        marked (a repeated acknowledgement counts 0). Audited as data leaving the device."""
        ids = list(dict.fromkeys(item_ids))
        if not ids:
            return 0
        now = self._clock.utcnow()
        with self._db.transaction() as conn:
            n = self._db.execute_in(
                "UPDATE outbox SET sent_at = ? WHERE item_id IN ({marks}) AND sent_at IS NULL",
                ids,
                now.isoformat(),
            )
            if n:
                counters_mod.bump(conn, day_of(now), uplinked=n)
                self._audit.append_in(
                    conn,
                    SYSTEM_ACTOR,
                    "uplink",
                    "uplink.ack",
                    "server acknowledged delivery",
                    "ok",
                    {"items": n},
                )
        return n

    def dead_letter(self, reasons: Mapping[str, str]) -> int:
        """Move items the agency rejected for good (``{item_id: reason}``) out of the queue.

        They are no longer sent, but kept, with ``failed_reason = "rejected: <reason>"``, until
        their day's retention purges them like any other row; never dropped here. Audited in
        the same transaction. Idempotent: returns how many were newly moved."""
        rows = [(f"{DEAD_LETTER_PREFIX}{why}"[:200], iid) for iid, why in reasons.items()]
        if not rows:
            return 0
        with self._db.transaction() as conn:
            n = sum(
                conn.execute(
                    "UPDATE outbox SET failed_reason = ? WHERE item_id = ?"
                    " AND sent_at IS NULL AND failed_reason IS NULL",
                    row,
                ).rowcount
                for row in rows
            )
            if n:
                self._audit.append_in(
                    conn, SYSTEM_ACTOR, "uplink", "outbox.dead_letter",
                    "agency rejected permanently", "kept_until_retention",
                    {"items": n, "reasons": sorted(set(reasons.values()))},
                )
        if n:
            log.error("outbox items rejected permanently: kept as dead letters",
                      extra={"items": n})
        return n

    def dead_letters(self, limit: int = 1000) -> list[DeadLetter]:
        """Dead-lettered items, oldest first (no personal data: ids, day, reason)."""
        with self._db.locked() as conn:
            rows = conn.execute(
                "SELECT item_id, kind, read_id, day, attempts, failed_reason FROM outbox"
                " WHERE sent_at IS NULL AND failed_reason LIKE ? ORDER BY created_seq LIMIT ?",
                (f"{DEAD_LETTER_PREFIX}%", limit),
            ).fetchall()
        return [DeadLetter(r[0], r[1], r[2], r[3], int(r[4]), r[5][len(DEAD_LETTER_PREFIX):])
                for r in rows]

    def dead_letter_count(self) -> int:
        with self._db.locked() as conn:
            row = conn.execute(
                "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND failed_reason LIKE ?",
                (f"{DEAD_LETTER_PREFIX}%",),
            ).fetchone()
        return int(row[0])

    def record_attempt(self, item_ids: Iterable[str]) -> None:
        """Count one delivery attempt for each item (for back-off and diagnostics)."""
        ids = list(dict.fromkeys(item_ids))
        with self._db.transaction():
            self._db.execute_in(
                "UPDATE outbox SET attempts = attempts + 1 WHERE item_id IN ({marks})", ids
            )

    def depth(self) -> dict[str, int]:
        with self._db.locked() as conn:
            rows = conn.execute(
                "SELECT kind, count(*) FROM outbox WHERE sent_at IS NULL AND failed_reason IS NULL"
                " GROUP BY kind"
            ).fetchall()
        depth = {"alerts": 0, "reads": 0}
        for kind, n in rows:
            depth["alerts" if kind == "alert" else "reads"] = int(n)
        return depth
