"""Retention with an injected clock: day keys shredded, old rows gone, counters right."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from drivers.clock import FakeClock
from storage import MemoryKeySource, Store, StoreSettings
from storage.retention import expired_days
from tests.kit import make_alert, make_read, open_store
from tests.kit.people import INVESTIGATOR

T0 = datetime(2026, 11, 1, 10, tzinfo=UTC)


def test_expired_days_policy() -> None:
    today = date(2026, 12, 1)
    days = ["2026-10-31", "2026-11-01", "2026-11-02", "2026-12-01", "garbage"]
    assert expired_days(days, today, 30) == ["2026-10-31", "2026-11-01", "garbage"]
    assert expired_days(days, today, 90) == ["garbage"]


def _fill(store: Store, clock: FakeClock, days: int, per_day: int, rng: random.Random) -> dict:
    ids: dict[str, list[str]] = {}
    for _ in range(days):
        day = clock.utcnow().date().isoformat()
        for i in range(per_day):
            r = make_read(
                rng, captured_at=clock.utcnow(), crop_bytes=800, plate="AB123CD" if i == 0 else None
            )
            store.put_read(r, [make_alert(r, rng=rng)] if i == 1 else [])
            ids.setdefault(day, []).append(r.read_id)
        clock.advance(86400)
    return ids


def _deliver(store: Store) -> int:
    """Acknowledge everything in the outbox (retention waits for delivery)."""
    return store.mark_sent(i.item_id for i in store.next_outbox_batch(10**6, 10**9))


def test_purge_shreds_keys_deletes_rows_and_counts(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    ks = MemoryKeySource()
    path = tmp_path / "s.db"
    rng = random.Random(21)
    store = open_store(path, ks, clock, retention_days=30)
    ids = _fill(store, clock, days=5, per_day=4, rng=rng)
    with sqlite3.connect(str(path)) as raw:
        wrapped = {d: bytes(w) for d, w in raw.execute("SELECT day, wrapped FROM day_keys")}
        old_payload = bytes(raw.execute("SELECT payload FROM reads LIMIT 1").fetchone()[0])
    assert len(wrapped) == 5
    _deliver(store)
    # Now 2026-11-06. Move to 2026-12-02: days 11-01 and 11-02 are >= 30 days old.
    clock.advance((datetime(2026, 12, 2, 9, tzinfo=UTC) - clock.utcnow()).total_seconds())
    res = store.purge_expired()
    assert res.days == ("2026-11-01", "2026-11-02")
    assert res.reads == 8 and res.alerts == 2 and res.images == 8 and res.unsent_outbox == 0
    assert store.get_reads(ids["2026-11-01"], INVESTIGATOR) == []
    assert len(store.get_reads(ids["2026-11-03"], INVESTIGATOR)) == 4
    assert len(store.search_plate("AB123CD", INVESTIGATOR)) == 3
    assert store.health().live_days == ("2026-11-03", "2026-11-04", "2026-11-05")
    again = store.purge_expired()
    assert again.days == () and again.reads == 0
    purges = [e for e in store.audit_entries() if e.action == "retention.purge"]
    assert len(purges) == 1 and purges[0].detail["reads"] == 8
    stats = store.stats(window_days=30)
    assert stats["purges"] == 1 and stats["purged_reads"] == 8
    # reads counted on 11-03..11-05 are still within the 30-day window ending 12-02
    assert stats["reads"] == 12 and stats["hotlist_hits"] == 3 and stats["searches"] == 1
    assert stats["stored_reads"] == 12
    assert store.verify_audit().ok
    store.close()
    raw_bytes = path.read_bytes()
    wal = Path(str(path) + "-wal")
    if wal.exists():
        raw_bytes += wal.read_bytes()
    # Crypto-shredding: the destroyed wrapped keys are nowhere in the file, not even in free
    # pages; the surviving days' keys are.
    assert wrapped["2026-11-01"] not in raw_bytes and wrapped["2026-11-02"] not in raw_bytes
    assert wrapped["2026-11-04"] in raw_bytes
    assert old_payload not in raw_bytes  # freed pages were returned by incremental vacuum


def test_copied_file_after_purge_cannot_decrypt_old_rows(tmp_path: Path) -> None:
    """Rows re-inserted from a pre-purge copy are unreadable: the key is gone."""
    clock = FakeClock(T0)
    ks = MemoryKeySource()
    path = tmp_path / "s.db"
    rng = random.Random(22)
    store = open_store(path, ks, clock, retention_days=7)
    _fill(store, clock, days=1, per_day=3, rng=rng)
    _deliver(store)
    with sqlite3.connect(str(path)) as raw:
        rows = raw.execute("SELECT read_id, day, plate_idx, payload FROM reads").fetchall()
    clock.advance(8 * 86400)
    assert store.purge_expired().reads == 3
    store.close()
    with sqlite3.connect(str(path)) as raw:
        raw.executemany(
            "INSERT INTO reads(read_id, day, plate_idx, payload) VALUES (?,?,?,?)", rows
        )
    with open_store(path, ks, clock, retention_days=7) as s:
        assert s.get_reads([r[0] for r in rows], INVESTIGATOR) == []


def test_purge_runs_at_open_and_on_schedule(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    ks = MemoryKeySource()
    path = tmp_path / "s.db"
    settings = StoreSettings(retention_days=2, purge_interval_s=3600)
    with open_store(path, ks, clock, settings=settings) as s:
        _fill(s, clock, days=1, per_day=2, rng=random.Random(23))
        _deliver(s)
    clock.advance(3 * 86400)
    with open_store(path, ks, clock, settings=settings) as s:  # purge at start
        assert s.stats()["purged_reads"] == 2
        _fill(s, clock, days=1, per_day=2, rng=random.Random(24))
        _deliver(s)
        clock.advance(2 * 86400)
        s.maintenance()  # interval elapsed on the monotonic clock: purges
        assert s.stats()["purged_reads"] == 4
        s.put_read(make_read(random.Random(25)))
        _deliver(s)
        clock.advance(3 * 86400)
        assert s.stats()["stored_reads"] == 1
        s.maintenance()
        assert s.stats()["stored_reads"] == 0


@pytest.mark.parametrize("retention", [1, 30, 90])
def test_no_read_outlives_retention(tmp_path: Path, retention: int) -> None:
    clock = FakeClock(datetime(2026, 11, 1, 0, 0, 1, tzinfo=UTC))
    with open_store(tmp_path / "s.db", clock=clock, retention_days=retention) as s:
        s.put_read(make_read(random.Random(26), captured_at=clock.utcnow()))
        _deliver(s)
        clock.advance(retention * 86400 - 2)
        s.purge_expired()
        assert s.stats()["stored_reads"] == 1
        clock.step_wall(timedelta(seconds=1))
        s.purge_expired()
        assert s.stats()["stored_reads"] == 0
