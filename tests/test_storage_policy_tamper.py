"""What someone with write access to the card (and no key) could do to stored data, and what
retention must reach. Each test edits the real file with sqlite3 or raw bytes, as an attacker or
a bit flip would, then drives the real store.

* a damaged wrapped day key sets its day aside; the store keeps opening and storing;
* outbox and alert rows carry a MAC: an alert marked sent, set aside, deleted or pointed at
  another read is refused, audited and shown;
* retention reaches the copies moved aside as corrupt, and a purge is reported done only once
  the key bytes are gone from every file (a reader holding a snapshot delays it, visibly).
"""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drivers.clock import FakeClock
from storage import MemoryKeySource, TamperDetected
from storage.copies import moved_aside
from storage.crypto import KeyHierarchy
from storage.outbox import MAC_MISMATCH
from storage.rowmac import RowMac
from tests.kit import make_alert, make_read, open_store
from tests.kit.people import INVESTIGATOR

T0 = datetime(2026, 1, 10, 12, tzinfo=UTC)


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(path), isolation_level=None)


def _files_holding(directory: Path, needle: bytes) -> list[str]:
    """Every file under ``directory`` (database, WAL, SHM, copies) whose bytes hold ``needle``."""
    return sorted(p.name for p in directory.iterdir() if p.is_file() and needle in p.read_bytes())


def _audit_actions(store: object) -> list[str]:
    return [e.action for e in store.audit_entries()]  # type: ignore[attr-defined]


# ---------------------------------------------------------------- finding 4: damaged day key


def test_one_bad_bit_in_a_wrapped_day_key_sets_that_day_aside_and_the_store_keeps_going(
    tmp_path: Path,
) -> None:
    ks, clock, path = MemoryKeySource(), FakeClock(T0), tmp_path / "s.db"
    rng = random.Random(3)
    with open_store(path, ks, clock) as s:
        old = [make_read(rng) for _ in range(3)]
        for r in old:
            s.put_read(r)
        clock.step_wall(timedelta(days=1))
        young = make_read(rng)
        s.put_read(young)
    day = T0.date().isoformat()
    with _raw(path) as c:
        wrapped = bytearray(c.execute("SELECT wrapped FROM day_keys WHERE day=?", (day,))
                            .fetchone()[0])
        wrapped[20] ^= 0x01
        c.execute("UPDATE day_keys SET wrapped=? WHERE day=?", (bytes(wrapped), day))
    with open_store(path, ks, clock) as s:  # used to raise TamperDetected here
        h = s.health()
        assert h.damaged_day_keys == (day,) and h.set_aside_reads == 3
        assert h.degraded and h.as_dict()["damaged_day_keys"] == [day]
        entry = [e for e in s.audit_entries() if e.action == "store.day_key_damaged"]
        assert entry and entry[0].detail == {"days": [day], "reads": 3}
        assert s.get_reads([young.read_id], INVESTIGATOR)[0].plate_text == young.plate_text
        with pytest.raises(TamperDetected):
            s.get_reads([old[0].read_id], INVESTIGATOR)
        # The uplink sets that day's items aside instead of spinning on them.
        batch = s.next_outbox_batch(100, 10**9)
        assert {b.item_id for b in batch} == {young.read_id}
        fresh = make_read(rng)
        s.put_read(fresh)  # keeps storing
        assert s.verify_audit().ok
    with open_store(path, ks, clock) as s:  # and keeps starting; audited once, not per start
        assert s.health().damaged_day_keys == (day,)
        assert _audit_actions(s).count("store.day_key_damaged") == 1
        clock.step_wall(timedelta(days=31))
        s.purge_expired()  # the set-aside day goes with retention like any other
        assert s.health().damaged_day_keys == () and not s.health().degraded


# ---------------------------------------------------------------- finding 5: row MACs


def _with_alert(path: Path, ks: MemoryKeySource) -> tuple[str, str, str]:
    """A store holding read A with an alert, and read B. Returns (alert id, A, B)."""
    rng = random.Random(5)
    with open_store(path, ks) as s:
        a, b = make_read(rng), make_read(rng)
        alert = make_alert(a, rng=rng)
        s.put_read(a, [alert])
        s.put_read(b)
    return alert.alert_id, a.read_id, b.read_id


def _refused(path: Path, ks: MemoryKeySource, alert_id: str) -> None:
    with open_store(path, ks) as s:
        h = s.health()
        assert h.mac_mismatches >= 1 and not h.ok and h.as_dict()["mac_mismatches"] >= 1
        mism = [e for e in s.audit_entries() if e.action == "outbox.mac_mismatch"]
        assert mism and alert_id in mism[0].detail["ids"] and mism[0].result == "refused"
        assert alert_id not in {i.item_id for i in s.next_outbox_batch(100, 10**9)}
        reason = s._db.conn.execute(
            "SELECT failed_reason, sent_at FROM outbox WHERE item_id=?", (alert_id,)).fetchone()
        assert reason == (MAC_MISMATCH, None)
    with open_store(path, ks) as s:  # reported once, not at every start
        assert s.health().mac_mismatches == 0


@pytest.mark.parametrize("edit", [
    "UPDATE outbox SET sent_at='2026-01-01T00:00:00+00:00' WHERE item_id=:aid",
    "UPDATE outbox SET failed_reason='rejected: invalid' WHERE item_id=:aid",
    "UPDATE outbox SET priority=0, rank=1 WHERE item_id=:aid",
    "DELETE FROM outbox WHERE item_id=:aid",
], ids=["marked_sent", "suppressed", "demoted", "deleted"])
def test_an_alert_row_edited_without_the_key_is_refused_audited_and_shown(
    tmp_path: Path, edit: str,
) -> None:
    ks, path = MemoryKeySource(), tmp_path / "s.db"
    aid, _, _ = _with_alert(path, ks)
    with _raw(path) as c:
        c.execute(edit, {"aid": aid})
    _refused(path, ks, aid)


def test_an_alert_pointed_at_another_vehicles_read_is_refused(tmp_path: Path) -> None:
    ks, path = MemoryKeySource(), tmp_path / "s.db"
    aid, _, other = _with_alert(path, ks)
    with _raw(path) as c:
        c.execute("UPDATE outbox SET read_id=? WHERE item_id=?", (other, aid))
        c.execute("UPDATE alerts SET read_id=? WHERE alert_id=?", (other, aid))
    _refused(path, ks, aid)


def test_an_alert_relinked_with_valid_row_macs_is_still_refused_by_its_sealed_read_id(
    tmp_path: Path,
) -> None:
    """Even with the row MACs recomputed (someone holding the MAC key but unable to reseal the
    alert), the alert payload's sealed read id must equal the outbox row's."""
    kek = bytes(range(32))
    ks, path = MemoryKeySource(kek), tmp_path / "s.db"
    aid, _, other = _with_alert(path, ks)
    mac = RowMac(KeyHierarchy(kek).row_mac_key)
    with _raw(path) as c:
        c.execute("UPDATE outbox SET read_id=? WHERE item_id=?", (other, aid))
        c.execute("UPDATE alerts SET read_id=? WHERE alert_id=?", (other, aid))
        c.execute("BEGIN")
        mac.stamp_outbox(c, [aid])
        mac.stamp_alerts(c, [aid])
        c.execute("COMMIT")
    with open_store(path, ks) as s:
        assert s.health().mac_mismatches == 0  # the rows themselves check out...
        assert aid not in {i.item_id for i in s.next_outbox_batch(100, 10**9)}
        assert s.health().mac_mismatches == 1  # ...the sealed read id does not
        assert "outbox.mac_mismatch" in _audit_actions(s)


def test_untouched_rows_pass_and_delivery_state_changes_keep_their_macs(tmp_path: Path) -> None:
    ks, path = MemoryKeySource(), tmp_path / "s.db"
    aid, a, b = _with_alert(path, ks)
    with open_store(path, ks) as s:
        assert {i.item_id for i in s.next_outbox_batch(100, 10**9)} == {aid, a, b}
        s.mark_sent([aid, a])
        s.dead_letter({b: "invalid"})
        s.record_attempt([b])
    with open_store(path, ks) as s:
        assert s.health().mac_mismatches == 0 and s.verify_rows() == 0


# ---------------------------------------------------------------- finding 3: every copy


def _wrapped_keys(path: Path) -> dict[str, bytes]:
    with _raw(path) as c:
        return {d: bytes(w) for d, w in c.execute("SELECT day, wrapped FROM day_keys")}


def _garbage_mid(p: Path) -> None:
    with open(p, "r+b") as f:
        f.seek(p.stat().st_size // 2)
        f.write(random.Random(1).randbytes(16384))


def test_a_copy_moved_aside_as_corrupt_is_purged_by_day_and_deleted_once_expired(
    tmp_path: Path,
) -> None:
    ks, clock, path = MemoryKeySource(), FakeClock(T0), tmp_path / "s.db"
    rng = random.Random(9)
    with open_store(path, ks, clock) as s:
        for _ in range(150):
            s.put_read(make_read(rng, crop_bytes=2000))
        clock.step_wall(timedelta(days=20))
        for _ in range(150):
            s.put_read(make_read(rng, crop_bytes=2000))
    keys = _wrapped_keys(path)
    old_day, young_day = sorted(keys)
    _garbage_mid(path)
    with open_store(path, ks, clock) as s:
        assert s.health().recovered_from_corruption is not None
        s.mark_sent([i.item_id for i in s.next_outbox_batch(10**4, 10**12)])  # none held
    (copy,) = moved_aside(path)
    assert copy.name in _files_holding(tmp_path, keys[old_day])

    clock.step_wall(timedelta(days=11))  # old day expired, young one and the copy's stamp not
    with open_store(path, ks, clock) as s:
        s.purge_expired()
        entry = [e for e in s.audit_entries() if e.action == "retention.purge"][-1]
        assert entry.detail["copy_keys_scrubbed"] >= 1
    assert _files_holding(tmp_path, keys[old_day]) == []
    assert copy.name in _files_holding(tmp_path, keys[young_day])  # still within retention

    clock.step_wall(timedelta(days=120))  # the day it was moved aside has expired too
    with open_store(path, ks, clock) as s:
        s.purge_expired()
        entry = [e for e in s.audit_entries() if e.action == "retention.purge"][-1]
        assert entry.detail["copies_deleted"] == 1
    assert not list(tmp_path.glob("s.db.corrupt-*"))
    assert _files_holding(tmp_path, keys[young_day]) == []


def test_a_purge_behind_a_read_snapshot_is_not_reported_done_until_the_key_bytes_are_gone(
    tmp_path: Path,
) -> None:
    ks, clock, path = MemoryKeySource(), FakeClock(T0), tmp_path / "s.db"
    rng = random.Random(10)
    with open_store(path, ks, clock) as s:
        for _ in range(20):
            s.put_read(make_read(rng))
        s.mark_sent([i.item_id for i in s.next_outbox_batch(100, 10**9)])  # delivered: not held
    (wrapped,) = _wrapped_keys(path).values()
    assert _files_holding(tmp_path, wrapped) == ["s.db"]
    clock.step_wall(timedelta(days=31))
    with open_store(path, ks, clock):
        pass  # opened and purged: nothing held it back
    assert _files_holding(tmp_path, wrapped) == []

    # Again, with another connection reading an older snapshot during the purge.
    clock2, path2 = FakeClock(T0), tmp_path / "t.db"
    with open_store(path2, ks, clock2) as s:
        for _ in range(20):
            s.put_read(make_read(rng))
        s.mark_sent([i.item_id for i in s.next_outbox_batch(100, 10**9)])
    (wrapped2,) = _wrapped_keys(path2).values()
    with open_store(path2, ks, clock2) as s:
        reader = _raw(path2)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM day_keys").fetchone()  # holds its snapshot
        clock2.step_wall(timedelta(days=31))
        result = s.purge_expired()
        assert result.days and not result.complete
        h = s.health()
        assert h.shred_pending is not None and not h.ok
        last = [e for e in s.audit_entries() if e.action == "retention.purge"][-1]
        assert last.result == "pending_checkpoint"
        assert _files_holding(tmp_path, wrapped2)  # honest: the bytes are still there
        reader.execute("COMMIT")
        reader.close()
        again = s.purge_expired()
        assert again.complete and s.health().shred_pending is None
        assert "retention.shred_complete" in _audit_actions(s)
        assert _files_holding(tmp_path, wrapped2) == []
    assert _files_holding(tmp_path, wrapped2) == []


def test_salvage_does_not_trust_an_outbox_row_whose_mac_fails(tmp_path: Path) -> None:
    """A read marked sent by hand, then the file damaged: the salvaged store queues it again
    (delivered at least once) instead of carrying the forged state, and says so."""
    ks, path = MemoryKeySource(), tmp_path / "s.db"
    aid, a, b = _with_alert(path, ks)
    with _raw(path) as c:
        c.execute("UPDATE outbox SET sent_at='2026-01-01T00:00:00+00:00' WHERE item_id=?", (b,))
    with open(path, "r+b") as f:  # not a database any more: moved aside, header rebuilt
        f.write(bytes(100))
    with open_store(path, ks) as s:
        report = s.health().salvage
        assert report is not None and report.tampered_rows == 1
        assert {i.item_id for i in s.next_outbox_batch(100, 10**9)} == {aid, a, b}
        assert s.health().mac_mismatches == 0  # carried rows were stamped anew
