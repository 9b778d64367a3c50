"""MACs over the rows that are not sealed but decide what leaves the unit: outbox and alerts.

A read's and an alert's content is sealed under its day key, but the outbox row that says
whether it was delivered, and the alert row that says which read it belongs to, are plaintext
state. Without a MAC, someone with write access to the card and no key could mark an alert sent,
set it aside, or point it at another vehicle's read. Each such row carries
``HMAC-SHA256(row-mac key, canonical fields)[:16]``; the key is derived from the KEK
(``KeyHierarchy.row_mac_key``). ``attempts`` is left out: it only paces retries, and counting
an attempt must stay one cheap UPDATE.

The pure part (:class:`RowMac`) computes and checks; the ``stamp_*`` helpers write MACs inside
the caller's transaction after every insert or state change.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from storage.db import Database

MAC_BYTES = 16
#: The outbox columns a MAC covers, in order.
OUTBOX_COLS = "item_id, kind, read_id, day, rank, priority, created_seq, sent_at, failed_reason"
#: The alert columns a MAC covers, in order (the payload is sealed with the alert id as AD).
ALERT_COLS = "alert_id, read_id, day, priority"
_IN_CHUNK = 500


class RowMac:
    """Computes and checks row MACs under one key. No I/O."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "RowMac(<redacted>)"

    def _mac(self, table: str, fields: Sequence[Any]) -> bytes:
        msg = json.dumps([table, *fields], separators=(",", ":")).encode()
        return hmac.new(self._key, msg, hashlib.sha256).digest()[:MAC_BYTES]

    def outbox(self, fields: Sequence[Any]) -> bytes:
        """MAC of an outbox row given as the values of :data:`OUTBOX_COLS`."""
        return self._mac("outbox", fields)

    def alert(self, fields: Sequence[Any]) -> bytes:
        """MAC of an alert row given as the values of :data:`ALERT_COLS`."""
        return self._mac("alerts", fields)

    def outbox_ok(self, fields: Sequence[Any], mac: bytes | None) -> bool:
        return mac is not None and hmac.compare_digest(self.outbox(fields), bytes(mac))

    def alert_ok(self, fields: Sequence[Any], mac: bytes | None) -> bool:
        return mac is not None and hmac.compare_digest(self.alert(fields), bytes(mac))

    # ------------------------------------------------------------ writing (caller's transaction)

    def stamp_outbox(self, conn: sqlite3.Connection, item_ids: Sequence[str]) -> None:
        """Recompute the MAC of these outbox rows (after an insert or a state change)."""
        self._stamp(conn, "outbox", "item_id", OUTBOX_COLS, list(item_ids), self.outbox)

    def stamp_alerts(self, conn: sqlite3.Connection, alert_ids: Sequence[str]) -> None:
        self._stamp(conn, "alerts", "alert_id", ALERT_COLS, list(alert_ids), self.alert)

    def stamp_unstamped(self, conn: sqlite3.Connection) -> int:
        """MAC every row that has none. Only right after the migration that added the column,
        or after a salvage filled a fresh file: afterwards a NULL MAC is a mismatch."""
        n = 0
        for table, key, cols, fn in (("outbox", "item_id", OUTBOX_COLS, self.outbox),
                                     ("alerts", "alert_id", ALERT_COLS, self.alert)):
            ids = [r[0] for r in conn.execute(f"SELECT {key} FROM {table} WHERE mac IS NULL")]
            self._stamp(conn, table, key, cols, ids, fn)
            n += len(ids)
        return n

    @staticmethod
    def _stamp(conn: sqlite3.Connection, table: str, key: str, cols: str, ids: list[str],
               fn: Any) -> None:
        for i in range(0, len(ids), _IN_CHUNK):
            chunk = ids[i : i + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(f"SELECT {cols} FROM {table} WHERE {key} IN ({marks})", chunk)
            conn.executemany(f"UPDATE {table} SET mac = ? WHERE {key} = ?",
                             [(fn(r), r[0]) for r in rows.fetchall()])


#: Rows checked per hold of the database lock: a full scan never makes a read wait long.
SCAN_CHUNK_ROWS = 2000


def scan(db: Database, mac: RowMac) -> tuple[list[str], list[str], list[str]]:
    """(outbox item ids whose MAC fails, alert ids whose MAC fails, alert ids with no outbox
    row). Reads every outbox and alert row, :data:`SCAN_CHUNK_ROWS` per hold of ``db``'s lock:
    run at open and by maintenance, not per batch."""
    bad_outbox = _scan_table(db, "outbox", OUTBOX_COLS, mac.outbox_ok)
    bad_alerts = _scan_table(db, "alerts", ALERT_COLS, mac.alert_ok)
    with db.locked() as conn:
        orphans = [
            r[0] for r in conn.execute(
                "SELECT a.alert_id FROM alerts a LEFT JOIN outbox o ON o.item_id = a.alert_id"
                " WHERE o.item_id IS NULL")
        ]
    return bad_outbox, bad_alerts, orphans


def _scan_table(db: Database, table: str, cols: str,
                ok: Callable[[Sequence[Any], bytes | None], bool]) -> list[str]:
    bad: list[str] = []
    after = -1
    while True:
        with db.locked() as conn:
            rows = conn.execute(
                f"SELECT rowid, {cols}, mac FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (after, SCAN_CHUNK_ROWS)).fetchall()
        if not rows:
            return bad
        bad.extend(r[1] for r in rows if not ok(r[1:-1], r[-1]))
        after = rows[-1][0]
