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
from storage.rowmac import ALERT_COLS, OUTBOX_COLS, RowMac, scan
from storage.sealed import SealedRows

log = logging.getLogger(__name__)

#: ``failed_reason`` of an item the agency rejected for good (the dead-letter state); items
#: that failed authentication carry ``tamper: ...`` instead.
DEAD_LETTER_PREFIX = "rejected: "
#: ``failed_reason`` of a row whose MAC (or link to its read) did not check out.
MAC_MISMATCH = "tamper: row MAC mismatch"


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
        row_mac: RowMac,
    ) -> None:
        self._mac = row_mac
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
            full = conn.execute(
                f"SELECT {OUTBOX_COLS}, mac, attempts FROM outbox"
                " WHERE sent_at IS NULL AND failed_reason IS NULL"
                " ORDER BY rank, priority DESC, created_seq LIMIT ?",
                (max_items,),
            ).fetchall()
            read_ids = sorted({r[2] for r in full})
            reads = self._sealed.read_payloads(read_ids)
            alert_ids = [r[0] for r in full if r[1] == "alert"]
            alerts = self._sealed.alert_payloads(alert_ids)
            alert_rows = {r[0]: r for r in self._db.rows_in(
                f"SELECT {ALERT_COLS}, mac FROM alerts WHERE alert_id IN ({{marks}})", alert_ids)}
            images = self._sealed.images(read_ids) if include_images else {}
        items: list[OutboxItem] = []
        failed: list[tuple[str, str]] = []
        forged: list[str] = []
        total = 0
        for row in full:
            item_id, kind, read_id, day = row[:4]
            attempts = row[-1]
            if not self._row_ok(row, alert_rows.get(item_id)):
                forged.append(item_id)
                continue
            try:
                read_p = self._sealed.open_read(reads.get(read_id), read_id)
                if kind == "alert":
                    alert_p = self._sealed.open_alert(alerts.get(item_id), item_id)
                    if alert_p.get("read_id") != read_id:
                        forged.append(item_id)  # the alert names another read than its row
                        continue
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
        if forged:
            self.refuse_forged(forged, [])
        return items

    def _row_ok(self, row: tuple[Any, ...], alert_row: tuple[Any, ...] | None) -> bool:
        """The outbox row's MAC checks out, and for an alert so does its alert row, which
        names the same read."""
        if not self._mac.outbox_ok(row[:9], row[9]):
            return False
        if row[1] != "alert":
            return True
        if alert_row is None:
            return True  # the alert itself is missing: set aside as undecryptable below
        return self._mac.alert_ok(alert_row[:4], alert_row[4]) and alert_row[1] == row[2]

    def verify_rows(self) -> int:
        """Check the MAC of every outbox and alert row, and that every alert has its outbox
        row. What fails is refused (:meth:`refuse_forged`). Returns how many rows failed."""
        bad_outbox, bad_alerts, orphans = scan(self._db, self._mac)
        if bad_outbox or bad_alerts or orphans:
            self.refuse_forged(sorted(set(bad_outbox) | set(bad_alerts)), orphans)
        return len(bad_outbox) + len(bad_alerts) + len(orphans)

    def refuse_forged(self, item_ids: list[str], orphan_alerts: list[str]) -> None:
        """Rows edited by someone without the KEK: never delivered nor counted as delivered.
        Each is set aside as :data:`MAC_MISMATCH` (an alert whose outbox row was deleted gets
        one back, set aside), re-stamped so it is reported once, audited and counted."""
        with self._db.lock:
            with self._db.transaction() as conn:
                self._db.execute_in(
                    "UPDATE outbox SET failed_reason = ?, sent_at = NULL"
                    " WHERE item_id IN ({marks})", item_ids, MAC_MISMATCH)
                for aid in orphan_alerts:
                    conn.execute(
                        "INSERT INTO outbox(item_id, kind, read_id, day, rank, priority,"
                        " created_seq, failed_reason) SELECT alert_id, 'alert', read_id, day, 0,"
                        " priority, 0, ? FROM alerts WHERE alert_id = ?", (MAC_MISMATCH, aid))
                self._mac.stamp_outbox(conn, [*item_ids, *orphan_alerts])
                self._mac.stamp_alerts(conn, [*item_ids, *orphan_alerts])
                self._audit.append_in(
                    conn, SYSTEM_ACTOR, SYSTEM_ROLE, "outbox.mac_mismatch",
                    "outbox or alert row failed its MAC", "refused",
                    {"items": len(item_ids) + len(orphan_alerts),
                     "ids": [*item_ids, *orphan_alerts][:50]},
                )
            self._flags.mac_mismatches += len(item_ids) + len(orphan_alerts)
        log.error("outbox rows failed their MAC: refused and set aside",
                  extra={"items": len(item_ids) + len(orphan_alerts)})

    def _set_aside(self, failed: list[tuple[str, str]]) -> None:
        with self._db.lock:
            with self._db.transaction() as conn:
                conn.executemany(
                    "UPDATE outbox SET failed_reason = ? WHERE item_id = ?",
                    [(why, iid) for iid, why in failed],
                )
                self._mac.stamp_outbox(conn, [iid for iid, _ in failed])
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
                self._mac.stamp_outbox(conn, ids)
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
                self._mac.stamp_outbox(conn, list(reasons))
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
