"""The single writer thread: reads are queued, sealed outside the database lock, then committed a
group at a time (group commit: one fsync for many reads). A read's future completes only after
its transaction committed (or failed)."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from drivers.clock import Clock
from storage import counters as counters_mod
from storage.budget import Budget
from storage.clocktrust import TrustedTime
from storage.daykeys import DayKeys
from storage.db import Database
from storage.errors import StoreClosed, StoreError, StoreFull
from storage.health import HealthFlags
from storage.records import AlertRecord, ReadRecord
from storage.rowmac import RowMac
from storage.sealed import SealedRead, seal_read

log = logging.getLogger(__name__)

_SQLITE_FULL = 13
_BUDGET_CHECK_EVERY = 8  # batches between cheap page-count checks


@dataclass(slots=True)
class _Pending:
    read: ReadRecord
    alerts: tuple[AlertRecord, ...]
    future: Future[None]


@dataclass(slots=True)
class _Sealed:
    pending: _Pending
    rows: SealedRead


class Writer:
    def __init__(
        self,
        db: Database,
        day_keys: DayKeys,
        budget: Budget,
        flags: HealthFlags,
        group_commit_max: int,
        clock: Clock,
        trusted_time: TrustedTime,
        row_mac: RowMac,
    ) -> None:
        self._mac = row_mac
        self._time = trusted_time
        self._db = db
        self._day_keys = day_keys
        self._budget = budget
        self._flags = flags
        self._group_commit_max = group_commit_max
        self._clock = clock
        self._queue: deque[_Pending] = deque()
        self._cv = threading.Condition()
        self._closing = False
        self._batches = 0
        self._thread = threading.Thread(target=self._loop, name="store-writer", daemon=True)
        self._thread.start()

    def submit(self, read: ReadRecord, alerts: Sequence[AlertRecord] = ()) -> Future[None]:
        for a in alerts:
            if a.read_id != read.read_id:
                raise ValueError(f"alert {a.alert_id} belongs to read {a.read_id}, not this one")
        fut: Future[None] = Future()
        with self._cv:
            if self._closing:
                raise StoreClosed("store is closed")
            self._queue.append(_Pending(read, tuple(alerts), fut))
            self._cv.notify()
        return fut

    def drain_and_stop(self) -> None:
        """Refuse new reads, commit every queued one, and end the thread."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closing:
                    self._cv.wait()
                if not self._queue:
                    return
                n = min(len(self._queue), self._group_commit_max)
                batch = [self._queue.popleft() for _ in range(n)]
            try:
                self._write_batch(batch)
            except BaseException as e:  # the writer must never die silently
                log.exception("store writer failed a batch", extra={"batch": len(batch)})
                self._flags.last_error = f"{type(e).__name__}: {e}"
                self._flags.write_failing = self._flags.last_error
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(
                            e if isinstance(e, StoreError) else StoreError(str(e))
                        )
            self._batches += 1
            if self._batches % _BUDGET_CHECK_EVERY == 0 and self._budget.over():
                try:
                    self._budget.enforce()
                except StoreError as e:
                    self._flags.last_error = f"budget: {e}"

    def _write_batch(self, batch: list[_Pending]) -> None:
        cipher = self._day_keys.for_write(self._time.write_day())
        sealed: list[_Sealed] = []
        for p in batch:
            try:
                sealed.append(_Sealed(p, seal_read(p.read, p.alerts, cipher)))
            except Exception as e:  # noqa: BLE001 - a malformed record fails alone
                p.future.set_exception(StoreError(f"cannot encode read {p.read.read_id}: {e}"))
        if not sealed:
            return
        try:
            self._commit([s.rows for s in sealed])
        except sqlite3.OperationalError as e:
            if getattr(e, "sqlite_errorcode", None) != _SQLITE_FULL:
                raise StoreError(f"write failed: {e}") from e
            log.warning("disk full while writing reads; dropping by budget order and retrying")
            need = sum(s.rows.sealed_bytes() for s in sealed) * 2 + 1_048_576
            self._budget.enforce(force_free_bytes=need)
            try:
                self._commit([s.rows for s in sealed])
            except sqlite3.OperationalError as e2:
                self._flags.last_error = self._flags.write_failing = f"store full: {e2}"
                self._flags.disk_full = True
                err = StoreFull(f"store full even after dropping droppable data: {e2}")
                for s in sealed:
                    s.pending.future.set_exception(err)
                return
        self._flags.write_failing, self._flags.disk_full = None, False  # writable again
        for s in sealed:
            if not s.pending.future.done():
                s.pending.future.set_result(None)

    def _commit(self, sealed: list[SealedRead]) -> None:
        with self._db.transaction() as conn:
            existing = {
                r[0]
                for r in self._db.rows_in(
                    "SELECT read_id FROM reads WHERE read_id IN ({marks})",
                    [s.read_id for s in sealed],
                )
            }
            fresh: list[SealedRead] = []
            for s in sealed:
                if s.read_id in existing:
                    continue  # idempotent re-put: acknowledged, stored once
                existing.add(s.read_id)
                fresh.append(s)
            if fresh:
                self._insert(conn, fresh)

    def _insert(self, conn: sqlite3.Connection, fresh: list[SealedRead]) -> None:
        day = fresh[0].read_row[1]
        new_plates: set[bytes] = set()
        for s in fresh:
            idx = s.read_row[2]
            if idx in new_plates:
                continue
            seen = conn.execute(
                "SELECT 1 FROM reads WHERE plate_idx = ? AND day = ? LIMIT 1", (idx, day)
            ).fetchone()
            if seen is None:
                new_plates.add(idx)
        first = conn.execute("SELECT coalesce(max(seq), 0) FROM reads").fetchone()[0]
        conn.executemany(
            "INSERT INTO reads(read_id, day, plate_idx, payload, clock_flags)"
            " VALUES (?, ?, ?, ?, ?)",
            [s.read_row for s in fresh],
        )
        conn.executemany(
            "INSERT INTO images(read_id, kind, day, data) VALUES (?, ?, ?, ?)",
            [row for s in fresh for row in s.image_rows],
        )
        alert_rows = [row for s in fresh for row in s.alert_rows]
        if alert_rows:
            conn.executemany(
                "INSERT INTO alerts(alert_id, read_id, day, priority, payload, mac)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(*row, self._mac.alert(row[:4])) for row in alert_rows],
            )
        outbox_rows = [(*row, first + i + 1) for i, s in enumerate(fresh) for row in s.outbox_rows]
        conn.executemany(
            "INSERT INTO outbox(item_id, kind, read_id, day, rank, priority,"
            " created_seq, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(*row, self._mac.outbox((*row, None, None))) for row in outbox_rows],
        )
        counters_mod.bump(
            conn,
            day,
            reads=len(fresh),
            vehicles=len(new_plates),
            hotlist_hits=len(alert_rows),
        )
