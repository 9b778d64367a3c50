"""`vigil bench store`: durable insert rate (encrypted, and plaintext when given), outbox, purge,
size.

Every read carries a 20 KB crop and goes through the real acknowledgement path
(``Store.submit_read`` -> group-commit writer -> COMMIT with WAL + synchronous=FULL -> future
resolved). The producer keeps a bounded window of reads in flight, as a pipeline that emits a
read's result line on acknowledgement would. Given a plaintext cipher suite (the product ships
none; ``bench/store_bench.py`` passes the test kit's), the same code also runs with an identity
cipher and a plaintext "blind index", so the ratio is what encryption costs.

Also: outbox fetch+ack rate, purge time for one day of reads, database bytes per 100k reads,
and (if ``sqlcipher3`` is installed) SQLCipher whole-file encryption on the same rows.
"""

from __future__ import annotations

import os
import random
import sqlite3
import tempfile
import time
from collections import deque
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drivers.clock import FakeClock
from firmware.benchmarks.workload import make_read
from storage.crypto import CipherSuite
from storage.keys import MemoryKeySource
from storage.settings import StoreSettings
from storage.store import Store

CROP_BYTES = 20_000
WINDOW = 2048


def _reads(n: int, seed: int) -> list[Any]:
    rng = random.Random(seed)
    crop = rng.randbytes(CROP_BYTES)  # content does not matter to AES or SQLite
    base = [make_read(rng) for _ in range(min(n, 5000))]
    out = []
    for i in range(n):
        r = base[i % len(base)]
        out.append(
            type(r)(
                **{
                    **{f: getattr(r, f) for f in r.__slots__},
                    "read_id": f"{seed:04d}-{i:032d}",
                    "crop_jpeg": crop,
                }
            )
        )
    return out


_KEYS = MemoryKeySource()


def _open(path: Path, clock: FakeClock, suite: CipherSuite | None = None) -> Store:
    settings = StoreSettings(path=path, max_db_mb=1_000_000, group_commit_max=1024)
    return Store.open(path, _KEYS, settings, clock, background=False, cipher_suite=suite)


def _insert_rate(store: Store, reads: list[Any]) -> float:
    inflight: deque[Future[None]] = deque()
    t0 = time.perf_counter()
    for r in reads:
        inflight.append(store.submit_read(r))
        if len(inflight) >= WINDOW:
            inflight.popleft().result()
    while inflight:
        inflight.popleft().result()
    return len(reads) / (time.perf_counter() - t0)


def _db_bytes(path: Path) -> int:
    return sum(os.path.getsize(p) for p in (str(path), f"{path}-wal") if os.path.exists(p))


def _outbox_rate(store: Store, batch: int) -> float:
    t0 = time.perf_counter()
    n = 0
    while True:
        items = store.next_outbox_batch(batch, 1 << 30)
        if not items:
            break
        store.mark_sent([i.item_id for i in items])
        n += len(items)
    return n / (time.perf_counter() - t0)


def _sqlcipher(rows: list[tuple[str, str, bytes, bytes, bytes]], tmp: Path) -> dict[str, Any]:
    try:
        import sqlcipher3  # type: ignore[import-not-found]
    except ImportError:
        return {"sqlcipher": "skipped (sqlcipher3 not installed)"}

    def run(mod: Any, name: str, key: bool) -> float:
        path = tmp / f"{name}.db"
        conn = mod.connect(str(path), isolation_level=None)
        if key:
            conn.execute(f"PRAGMA key = \"x'{os.urandom(32).hex()}'\"")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(
            "CREATE TABLE reads (seq INTEGER PRIMARY KEY, read_id TEXT UNIQUE,"
            " day TEXT, plate_idx BLOB, payload BLOB)"
        )
        conn.execute("CREATE TABLE images (seq INTEGER PRIMARY KEY, read_id TEXT, data BLOB)")
        t0 = time.perf_counter()
        for i in range(0, len(rows), 1024):
            chunk = rows[i : i + 1024]
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO reads(read_id, day, plate_idx, payload) VALUES (?,?,?,?)",
                [r[:4] for r in chunk],
            )
            conn.executemany(
                "INSERT INTO images(read_id, data) VALUES (?,?)", [(r[0], r[4]) for r in chunk]
            )
            conn.execute("COMMIT")
        rate = len(rows) / (time.perf_counter() - t0)
        conn.close()
        return rate

    return {
        "sqlite_raw_rows_per_s": round(run(sqlite3, "raw", False)),
        "sqlcipher_raw_rows_per_s": round(run(sqlcipher3, "cipher", True)),
        "sqlcipher_version": getattr(sqlcipher3, "sqlite_version", "?"),
    }


def run(quick: bool = False, plaintext_suite: CipherSuite | None = None) -> dict[str, Any]:
    """The figures; ``plaintext_reads_per_s`` and ``encryption_cost_ratio`` only when a
    ``plaintext_suite`` is given (the product ships none)."""
    n = 3_000 if quick else 30_000
    purge_n = 5_000 if quick else 100_000
    clock = FakeClock(datetime(2026, 11, 23, 8, tzinfo=UTC))
    out: dict[str, Any] = {"reads": n, "crop_bytes": CROP_BYTES, "window": WINDOW}
    with tempfile.TemporaryDirectory(prefix="vigil-bench-store-") as tmp_s:
        tmp = Path(tmp_s)
        reads = _reads(n, 1)
        modes = ("plaintext", "encrypted") if plaintext_suite is not None else ("encrypted",)
        rates: dict[str, list[float]] = {mode: [] for mode in modes}
        # Alternate the two modes so background load on a shared machine hits both alike.
        for rnd in range(1 if quick else 2):
            for mode in modes:
                path = tmp / f"{mode}{rnd}.db"
                with _open(path, clock, plaintext_suite if mode == "plaintext" else None) as s:
                    rates[mode].append(_insert_rate(s, reads))
                if mode == "encrypted" and rnd == 0:
                    # Measured closed (WAL checkpointed and truncated), before the outbox run.
                    out["db_bytes_per_100k_reads"] = int(_db_bytes(path) / n * 100_000)
                    with _open(path, clock) as s:
                        out["outbox_fetch_ack_items_per_s"] = round(_outbox_rate(s, 200))
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
        out["encrypted_reads_per_s"] = round(max(rates["encrypted"]))
        if plaintext_suite is None:
            out["plaintext"] = "skipped (the plaintext baseline runs from bench/store_bench.py)"
        else:
            out["plaintext_reads_per_s"] = round(max(rates["plaintext"]))
            out["encryption_cost_ratio"] = round(
                out["plaintext_reads_per_s"] / out["encrypted_reads_per_s"], 3
            )
        # One day of reads, then a purge of that day.
        path = tmp / "purge.db"
        with _open(path, clock) as s:
            _insert_rate(s, _reads(purge_n, 2))
            size_before = _db_bytes(path)
            clock.advance(31 * 86400)
            res = s.purge_expired()
            out["purge_reads"] = res.reads
            out["purge_s"] = round(res.duration_s, 2)
            out["purge_db_bytes_before"] = size_before
            out["purge_db_bytes_after"] = _db_bytes(path)
        Path(path).unlink(missing_ok=True)
        sealed_rows = [
            (f"r{i}", "2026-11-23", os.urandom(16), os.urandom(420), os.urandom(CROP_BYTES + 29))
            for i in range(min(n, 10_000))
        ]
        out.update(_sqlcipher(sealed_rows, tmp))
    try:
        from firmware.benchmarks.common import envelope
    except ImportError:
        return out
    return envelope("store", out)
