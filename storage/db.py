"""The store's one SQLite connection: opening the file, the lock, transactions, IN lists.

Every write in the store goes through :func:`transaction` (``BEGIN IMMEDIATE`` ... ``COMMIT``,
rolled back if the block raises), and every query over a list of keys through
:meth:`Database.rows_in` / :meth:`Database.execute_in`, which split the list below SQLite's
bound-parameter limit.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from drivers import files
from drivers.clock import Clock
from storage.errors import CorruptStore, StoreClosed, StoreError
from storage.health import CorruptionRecovery
from storage.settings import StoreSettings

#: Keys per statement of a chunked IN list (SQLite allows 999 bound parameters by default).
IN_LIST_CHUNK = 500
#: SQLite's page cache per connection, in KiB. It fills up to this with the pages the uplink,
#: retention and the writer touch and keeps them: at 16 MB it was most of the daemon's RSS
#: growth in a soak (`vigil bench soak`, docs/benchmarks.md). Writes are appends and the outbox
#: reads recent rows, so a small cache costs little.
CACHE_KIB = 2048

T = TypeVar("T")


@contextmanager
def transaction(conn: sqlite3.Connection, *, secure_delete: bool = False) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back if the block raises anything.

    ``secure_delete`` zeroes the content freed by this transaction (SQLite's
    ``PRAGMA secure_delete``), and is switched off again afterwards whatever happened.
    """
    if secure_delete:
        conn.execute("PRAGMA secure_delete = ON")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    finally:
        if secure_delete:
            conn.execute("PRAGMA secure_delete = OFF")


def chunks(items: Sequence[T], n: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


class Database:
    """The connection shared by the store's threads, each statement under ``lock``.

    The lock is re-entrant: a part may call another part's helper while holding it. Nothing is
    done on the connection after :meth:`close`; a caller gets :class:`StoreClosed` instead.
    """

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self.conn = conn
        self.path = path
        self.lock = threading.RLock()
        self.closed = False

    def check_open(self) -> None:
        if self.closed:
            raise StoreClosed("store is closed")

    @contextmanager
    def locked(self) -> Iterator[sqlite3.Connection]:
        """The connection, held under the lock, for reads that need no transaction."""
        with self.lock:
            self.check_open()
            yield self.conn

    @contextmanager
    def transaction(self, *, secure_delete: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock (see :func:`transaction`)."""
        with self.lock:
            self.check_open()
            with transaction(self.conn, secure_delete=secure_delete):
                yield self.conn

    def rows_in(self, sql: str, keys: Sequence[Any], *leading: Any) -> Iterator[tuple[Any, ...]]:
        """Rows of ``sql``, whose IN list is written ``{marks}``, for every one of ``keys``.

        ``leading`` are the parameters bound before the IN list. The caller holds the lock
        until the iterator is exhausted.
        """
        for chunk in chunks(list(keys), IN_LIST_CHUNK):
            yield from self.conn.execute(self._in_sql(sql, chunk), (*leading, *chunk))

    def execute_in(self, sql: str, keys: Sequence[Any], *leading: Any) -> int:
        """Run an UPDATE/DELETE whose IN list is written ``{marks}`` over every one of ``keys``;
        returns the rows changed."""
        changed = 0
        for chunk in chunks(list(keys), IN_LIST_CHUNK):
            changed += self.conn.execute(self._in_sql(sql, chunk), (*leading, *chunk)).rowcount
        return changed

    @staticmethod
    def _in_sql(sql: str, chunk: Sequence[Any]) -> str:
        return sql.format(marks=",".join("?" * len(chunk)))

    def scalar(self, sql: str, *args: Any) -> Any:
        """The first column of the first row (under the lock)."""
        with self.locked() as conn:
            return conn.execute(sql, args).fetchone()[0]

    def wal_bytes(self) -> int:
        try:
            return os.path.getsize(self.path + "-wal")
        except OSError:
            return 0

    def truncate_wal(self) -> None:
        with self.locked() as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def checkpoint_truncate(self, wait_ms: int = 2000) -> bool:
        """Checkpoint the whole WAL into the file and reset it; True only if that completed.

        ``PRAGMA wal_checkpoint(TRUNCATE)`` answers (busy, log frames, checkpointed frames). It
        cannot finish while another connection reads an older snapshot: pages from before a
        deletion then stay in the file and the WAL. Waits ``wait_ms`` for readers (not the
        connection's 30 s, which would stall the writer behind the lock)."""
        with self.locked() as conn:
            conn.execute(f"PRAGMA busy_timeout = {wait_ms:d}")
            try:
                busy, log_frames, done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                conn.execute("PRAGMA busy_timeout = 30000")
        return busy == 0 and log_frames == done and self.wal_bytes() == 0

    def reclaim(self, *, checkpoint: bool = True) -> None:
        """Give freed pages back to the filesystem and truncate the WAL."""
        # In steps of 2,000 pages, releasing the lock between them, so reads keep being
        # acknowledged while gigabytes are given back. executescript steps the pragma to
        # completion (execute() would free a single page).
        while True:
            with self.lock:
                if self.closed:
                    return
                self.conn.executescript("PRAGMA incremental_vacuum(2000);")
                left = self.conn.execute("PRAGMA freelist_count").fetchone()[0]
            if not left:
                break
        if checkpoint:
            self.truncate_wal()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.conn.close()


# ---------------------------------------------------------------------- opening the file


def connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30.0)


def configure(conn: sqlite3.Connection, settings: StoreSettings) -> None:
    fresh = conn.execute("PRAGMA page_count").fetchone()[0] == 0
    if fresh:
        # Both only take effect before the first table exists.
        conn.execute(f"PRAGMA page_size = {settings.page_size:d}")
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreError(f"cannot enable WAL on {settings.path} (got {mode})")
    conn.execute("PRAGMA synchronous = FULL")
    budget = int(settings.max_db_mb * 1024 * 1024)
    conn.execute(f"PRAGMA journal_size_limit = {max(1 << 20, min(64 << 20, budget // 8)):d}")
    conn.execute(f"PRAGMA cache_size = {-CACHE_KIB:d}")
    conn.execute("PRAGMA secure_delete = OFF")


def integrity_check(conn: sqlite3.Connection, mode: str, path: str) -> None:
    if mode == "off":
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return
    pragma = "quick_check" if mode == "quick" else "integrity_check"
    rows = conn.execute(f"PRAGMA {pragma}").fetchall()
    if [r[0] for r in rows] != ["ok"]:
        raise CorruptStore(f"{path}: {pragma} failed: " + "; ".join(str(r[0]) for r in rows[:5]))


def move_aside(path: Path, clock: Clock, reason: str) -> CorruptionRecovery:
    """Rename a corrupt file (and its -wal/-shm) to ``<name>.corrupt-<UTC stamp>``, kept for
    forensics, and fsync the directory so the rename survives a power cut."""
    stamp = clock.utcnow().strftime("%Y%m%dT%H%M%S%fZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        side = Path(str(path) + suffix)
        if side.exists():
            os.replace(side, Path(str(target) + suffix))
    files.fsync_dir(path.parent)
    return CorruptionRecovery(moved_to=str(target), reason=reason[:500])
