"""Schema migrations: a store written by the previous firmware opens, migrates and keeps its
reads; reads carry what time sync said of their clock."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from storage import MemoryKeySource
from storage.codec import read_from_payload, read_payload
from storage.schema import MIGRATIONS, SCHEMA_VERSION
from tests.kit import make_read, open_store
from tests.kit.people import INVESTIGATOR


def _v1_copy_of(src: Path, dst: Path) -> None:
    """``dst``: a schema-1 file (built by migration 1 alone) holding ``src``'s rows."""
    conn = sqlite3.connect(str(dst), isolation_level=None)
    MIGRATIONS[1](conn)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("ATTACH DATABASE ? AS src", (str(src),))
    for table in ("meta", "day_keys", "outbox", "counters", "alerts", "images"):
        cols = ", ".join(r[1] for r in conn.execute(f"PRAGMA main.table_info({table})"))
        # meta.rowmac came with schema 3: a schema-1 file never has it.
        conn.execute(f"INSERT INTO {table} SELECT {cols} FROM src.{table}"
                     + (" WHERE key != 'rowmac'" if table == "meta" else ""))
    conn.execute("INSERT INTO reads(seq, read_id, day, plate_idx, payload)"
                 " SELECT seq, read_id, day, plate_idx, payload FROM src.reads")
    conn.execute("DETACH DATABASE src")
    conn.close()


def test_schema_1_store_migrates_to_2_and_keeps_its_reads(tmp_path: Path) -> None:
    assert SCHEMA_VERSION == 3
    rng, keys = random.Random(51), MemoryKeySource()
    old = make_read(rng, plate="AB123CD")
    with open_store(tmp_path / "new.db", keys) as s:
        s.put_read(old)
    _v1_copy_of(tmp_path / "new.db", tmp_path / "v1.db")
    with open_store(tmp_path / "v1.db", keys) as s:
        assert s.health().schema_version == SCHEMA_VERSION
        (got,) = s.get_reads([old.read_id], INVESTIGATOR)
        assert got.plate_text == "AB123CD" and got.clock_flags == ()
        stamped = make_read(rng)
        stamped = type(stamped)(**{**{f: getattr(stamped, f) for f in stamped.__slots__},
                                   "clock_synced": False,
                                   "clock_flags": ("clock_unsynced", "clock_jumped"),
                                   "clock_offset_s": -3.5})
        s.put_read(stamped)
        (back,) = s.get_reads([stamped.read_id], INVESTIGATOR)
        assert back.clock_flags == ("clock_unsynced", "clock_jumped")
        assert back.clock_offset_s == -3.5
        rows = dict(s._db.conn.execute("SELECT read_id, clock_flags FROM reads").fetchall())
        migrated = [e for e in s.audit_entries() if e.action == "store.open"][-1]
    assert rows == {old.read_id: None, stamped.read_id: "clock_unsynced,clock_jumped"}
    assert migrated.detail["migrated_from"] == 1
    assert s.health().mac_mismatches == 0  # rows from before schema 3 were stamped once


def test_payload_from_before_schema_2_reads_without_clock_flags() -> None:
    p = read_payload(make_read(random.Random(52)))
    del p["clock_flags"], p["clock_offset_s"]
    r = read_from_payload(p)
    assert r.clock_flags == () and r.clock_offset_s is None
