"""What the reference ingest service acknowledged, on disk (SQLite), so that a killed and
restarted service still knows every read, alert and audit checkpoint it answered 200 for, and
goes on de-duplicating against them: exactly-once can then be counted across a server restart.

Each batch's new items and receipts are committed (WAL, ``synchronous = FULL``) before the
service answers, so an acknowledgement never outlives its record. Status reports and OTA steps
are not kept (no test restarts the service around them).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL,
    UNIQUE (kind, id));
CREATE TABLE IF NOT EXISTS receipts (id TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, device TEXT NOT NULL, doc TEXT NOT NULL);
"""


class LedgerState(Protocol):
    """The parts of ``hil.ingest_server.IngestState`` the ledger fills at start."""

    reads: dict[str, dict[str, Any]]
    alerts: dict[str, dict[str, Any]]
    receipts: Any  # collections.Counter[str]
    order: list[tuple[str, str]]
    checkpoints: dict[str, list[dict[str, Any]]]


class Ledger:
    """The service's SQLite file. Thread-safe; the service calls it under its own lock."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")
        self._conn.executescript(SCHEMA)

    def load(self, state: LedgerState) -> None:
        """Put everything kept into ``state`` (items in first-arrival order)."""
        with self._lock:
            for kind, rid, body in self._conn.execute(
                    "SELECT kind, id, body FROM items ORDER BY seq"):
                (state.reads if kind == "reads" else state.alerts)[rid] = json.loads(body)
                state.order.append((kind, rid))
            for rid, n in self._conn.execute("SELECT id, n FROM receipts"):
                state.receipts[rid] = n
            for device, doc in self._conn.execute(
                    "SELECT device, doc FROM checkpoints ORDER BY seq"):
                state.checkpoints.setdefault(device, []).append(json.loads(doc))

    def record_batch(self, kind: str, new: Sequence[tuple[str, dict[str, Any]]],
                     received: Iterable[str]) -> None:
        """One batch in one transaction: its new items, and a receipt for every id accepted."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR IGNORE INTO items (kind, id, body) VALUES (?, ?, ?)",
                    [(kind, rid, json.dumps(item, sort_keys=True)) for rid, item in new])
                self._conn.executemany(
                    "INSERT INTO receipts (id, n) VALUES (?, 1) "
                    "ON CONFLICT (id) DO UPDATE SET n = n + 1", [(r,) for r in received])
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def record_checkpoint(self, device: str, doc: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute("INSERT INTO checkpoints (device, doc) VALUES (?, ?)",
                               (device, json.dumps(doc, sort_keys=True)))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
