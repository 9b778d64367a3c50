"""Tampering and damage: flipped bytes, swapped rows, truncated files, edited audit, newer
schema, wrong key. Each drives the real store on a real file."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from storage import KeySourceError, MemoryKeySource, SchemaTooNew, TamperDetected
from storage.schema import SCHEMA_VERSION
from tests.kit import make_alert, make_read, open_store
from tests.kit.people import INVESTIGATOR


def _populate(path: Path, ks: MemoryKeySource, n: int = 5) -> list[str]:
    rng = random.Random(11)
    ids = []
    with open_store(path, ks) as s:
        for i in range(n):
            r = make_read(rng, crop_bytes=500)
            s.put_read(r, [make_alert(r, rng=rng)] if i == 0 else [])
            ids.append(r.read_id)
    return ids


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(path), isolation_level=None)


def test_flipped_ciphertext_byte_is_detected(tmp_path: Path) -> None:
    ks, path = MemoryKeySource(), tmp_path / "s.db"
    ids = _populate(path, ks)
    with _raw(path) as c:
        blob = bytearray(
            c.execute("SELECT payload FROM reads WHERE read_id=?", (ids[2],)).fetchone()[0]
        )
        blob[-5] ^= 0x40
        c.execute("UPDATE reads SET payload=? WHERE read_id=?", (bytes(blob), ids[2]))
    with open_store(path, ks) as s:
        with pytest.raises(TamperDetected):
            s.get_reads([ids[2]], INVESTIGATOR)
        assert len(s.get_reads([ids[1]], INVESTIGATOR)) == 1
        # The uplink sets the damaged item aside instead of retrying it forever.
        batch = s.next_outbox_batch(100, 10**9)
        assert ids[2] not in {b.item_id for b in batch} and len(batch) == 5
        assert s.health().undecryptable_items == 1 and not s.health().ok
        assert s.verify_audit().ok


def test_flipped_image_byte_is_detected(tmp_path: Path) -> None:
    ks, path = MemoryKeySource(), tmp_path / "s.db"
    ids = _populate(path, ks)
    with _raw(path) as c:
        blob = bytearray(
            c.execute("SELECT data FROM images WHERE read_id=?", (ids[1],)).fetchone()[0]
        )
        blob[100] ^= 1
        c.execute("UPDATE images SET data=? WHERE read_id=?", (bytes(blob), ids[1]))
    with open_store(path, ks) as s, pytest.raises(TamperDetected):
        s.get_reads([ids[1]], INVESTIGATOR)


def test_swapped_rows_fail_to_decrypt(tmp_path: Path) -> None:
    ks, path = MemoryKeySource(), tmp_path / "s.db"
    ids = _populate(path, ks)
    with _raw(path) as c:
        a = c.execute("SELECT payload FROM reads WHERE read_id=?", (ids[1],)).fetchone()[0]
        b = c.execute("SELECT payload FROM reads WHERE read_id=?", (ids[3],)).fetchone()[0]
        c.execute("UPDATE reads SET payload=? WHERE read_id=?", (b, ids[1]))
        c.execute("UPDATE reads SET payload=? WHERE read_id=?", (a, ids[3]))
        # an image moved to another read
        img = c.execute("SELECT data FROM images WHERE read_id=?", (ids[4],)).fetchone()[0]
        c.execute("UPDATE images SET data=? WHERE read_id=?", (img, ids[0]))
    with open_store(path, ks) as s:
        for rid in (ids[1], ids[3], ids[0]):
            with pytest.raises(TamperDetected):
                s.get_reads([rid], INVESTIGATOR)


def test_edited_audit_entry_in_database_is_detected(tmp_path: Path) -> None:
    ks, path = MemoryKeySource(), tmp_path / "s.db"
    with open_store(path, ks) as s:
        for i in range(5):
            s.audit("eve", "technician", "console.command", "look around", "ok", {"i": i})
    with _raw(path) as c:
        c.execute("UPDATE audit SET reason='routine' WHERE seq=3")
    with open_store(path, ks) as s:
        rep = s.verify_audit()
        assert not rep.ok and any("seq 3" in p for p in rep.problems)


def test_deleted_audit_entries_are_detected(tmp_path: Path) -> None:
    ks, path = MemoryKeySource(), tmp_path / "s.db"
    with open_store(path, ks) as s:
        for i in range(5):
            s.audit("eve", "technician", "console.command", "look around", "ok", {"i": i})
    with _raw(path) as c:
        c.execute("DELETE FROM audit WHERE seq=4")
    with open_store(path, ks) as s:
        assert not s.verify_audit().ok
    with _raw(path) as c:  # cutting the tail below the close-time checkpoint
        last = c.execute("SELECT max(seq) FROM audit_checkpoints").fetchone()[0]
        c.execute("DELETE FROM audit WHERE seq >= ?", (last - 1,))
    with open_store(path, ks) as s:
        rep = s.verify_audit()
        assert any("truncated" in p for p in rep.problems)


def test_truncated_file_is_moved_aside_and_daemon_continues(tmp_path: Path) -> None:
    ks, path = MemoryKeySource(), tmp_path / "s.db"
    _populate(path, ks, n=40)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    with open_store(path, ks) as s:
        h = s.health()
        assert not h.ok and h.recovered_from_corruption is not None
        moved = Path(h.recovered_from_corruption.moved_to)
        assert moved.exists() and moved.stat().st_size == size // 2
        assert [e.action for e in s.audit_entries()][:1] == ["store.corrupt_recovered"]
        s.put_read(make_read(random.Random(1)))  # keeps storing plates
        assert s.outbox_depth()["reads"] == 1


def test_garbage_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not a database" * 100)
    with open_store(path, MemoryKeySource()) as s:
        recovered = s.health().recovered_from_corruption
        assert recovered is not None and recovered.moved_to.startswith(str(path))
    assert len(list(tmp_path.glob("s.db.corrupt-*"))) == 1


def test_corrupted_page_detected_by_integrity_check(tmp_path: Path) -> None:
    ks, path = MemoryKeySource(), tmp_path / "s.db"
    _populate(path, ks, n=60)
    data = bytearray(path.read_bytes())
    page = 8192
    for off in range(2 * page, min(len(data), 6 * page), 7):  # scribble over b-tree pages
        data[off] = 0xFF
    path.write_bytes(bytes(data))
    with open_store(path, ks) as s:
        assert s.health().recovered_from_corruption is not None


def test_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    ks, path = MemoryKeySource(), tmp_path / "s.db"
    _populate(path, ks, n=2)
    with _raw(path) as c:
        c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = path.read_bytes()
    with pytest.raises(SchemaTooNew, match="newer firmware"):
        open_store(path, ks)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("*.corrupt-*"))


def test_wrong_kek_is_refused_without_touching_data(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    _populate(path, MemoryKeySource(), n=2)
    with pytest.raises(KeySourceError, match="does not match"):
        open_store(path, MemoryKeySource())
    assert not list(tmp_path.glob("*.corrupt-*"))
