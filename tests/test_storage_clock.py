"""Retention trusts only a clock the daemon trusts: a forward step never destroys undelivered
reads, an untrusted clock blocks every purge (and health says so), and a step back never makes
a read live longer than the rule in docs/storage.md ("Retention and the clock")."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from drivers.clock import FakeClock
from storage import MemoryKeySource, Store, StoreSettings
from storage.purge import BLOCKED_UNTRUSTED
from storage.retention import effective_days
from tests.kit import make_read, open_store
from tests.kit.people import INVESTIGATOR

T0 = datetime(2026, 11, 1, 10, tzinfo=UTC)
DAY = 86400.0


class Trust:
    """The daemon's judgement, switchable by the test."""

    def __init__(self) -> None:
        self.ok = True

    def __call__(self) -> bool:
        return self.ok


def _open(path: Path, ks: MemoryKeySource, clock: FakeClock, trust: Trust) -> Store:
    store = open_store(path, ks, clock, retention_days=30)
    store.set_clock_trusted(trust)
    return store


def _put(store: Store, clock: FakeClock, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    ids = []
    for _ in range(n):
        r = make_read(rng, captured_at=clock.utcnow())
        store.put_read(r)
        ids.append(r.read_id)
    return ids


def _pending(store: Store) -> set[str]:
    return {i.item_id for i in store.next_outbox_batch(10**6, 10**9)}


def test_effective_days_age_future_stamps_by_insert_order() -> None:
    today = date(2026, 11, 5)
    order = ["2026-11-01", "2026-12-11", "2026-11-02", "2026-11-05"]
    assert effective_days(order, today) == {
        "2026-11-01": "2026-11-01",
        "2026-12-11": "2026-11-01",  # written after 11-01's first write
        "2026-11-02": "2026-11-02",
        "2026-11-05": "2026-11-05",
    }
    assert effective_days(["2026-12-11", "2026-11-03"], today)["2026-12-11"] == "2026-11-03"
    assert "2026-12-11" not in effective_days(["2026-12-11"], today)  # no anchor yet: kept


def test_forward_step_with_untrusted_clock_purges_nothing(tmp_path: Path) -> None:
    clock, trust, ks = FakeClock(T0), Trust(), MemoryKeySource()
    with _open(tmp_path / "s.db", ks, clock, trust) as s:
        sent = _put(s, clock, 3, 1)
        s.mark_sent(sent)
        unsent = _put(s, clock, 5, 2)
        clock.step_wall(timedelta(days=40))
        trust.ok = False  # the daemon flags its clock jumped/unsynced
        late = _put(s, clock, 2, 3)
        res = s.purge_expired()
        assert res.days == () and res.reads == 0
        h = s.health()
        assert h.purge_blocked == BLOCKED_UNTRUSTED and h.as_dict()["purge_blocked"]
        assert _pending(s) == set(unsent) | set(late)
        assert len(s.get_reads(sent, INVESTIGATOR)) == 3
        # written 40 days "ahead": stamped no later than the trusted high-water day + 1
        assert max(h.live_days or ()) <= (T0 + timedelta(days=1)).date().isoformat()
        clock.advance(2 * 3600)
        s.maintenance()
        assert s.health().purge_blocked == BLOCKED_UNTRUSTED
    # restart with the clock still stepped: the open-time purge waits too
    trust.ok = False
    settings = StoreSettings(retention_days=30)
    s2 = Store.open(tmp_path / "s.db", ks, settings, clock, background=False, clock_trusted=trust)
    with s2:
        assert s2.health().purge_blocked == BLOCKED_UNTRUSTED
        assert _pending(s2) == set(unsent) | set(late)
        assert len(s2.get_reads(sent, INVESTIGATOR)) == 3


def test_forward_step_believed_purges_only_delivered_reads(tmp_path: Path) -> None:
    """A clock wrongly trusted 40 days ahead: sent reads go, unsent ones wait for delivery."""
    clock, trust = FakeClock(T0), Trust()
    with _open(tmp_path / "s.db", MemoryKeySource(), clock, trust) as s:
        sent = _put(s, clock, 3, 4)
        s.mark_sent(sent)
        unsent = _put(s, clock, 4, 5)
        clock.step_wall(timedelta(days=40))
        res = s.purge_expired()
        assert res.days == () and res.reads == 3 and res.unsent_outbox == 0
        assert res.held_days == (T0.date().isoformat(),) and res.held_unsent == 4
        assert _pending(s) == set(unsent)
        got = s.next_outbox_batch(100, 10**9)
        assert sorted(i.item_id for i in got) == sorted(unsent)  # still decrypt
        s.mark_sent(unsent)
        res = s.purge_expired()  # delivered: now the day is shredded
        assert res.days == (T0.date().isoformat(),) and res.reads == 4
        assert s.health().live_days == ()


def test_step_back_after_believed_forward_step_keeps_no_read_longer(tmp_path: Path) -> None:
    clock, trust = FakeClock(T0), Trust()
    with _open(tmp_path / "s.db", MemoryKeySource(), clock, trust) as s:
        _put(s, clock, 1, 6)
        clock.step_wall(timedelta(days=40))
        future = _put(s, clock, 3, 7)  # stamped 2026-12-11 by a clock believed
        clock.step_wall(timedelta(days=-40))  # synchronised back
        s.mark_sent(_pending(s))
        clock.advance(29 * DAY)
        s.purge_expired()
        assert len(s.get_reads(future, INVESTIGATOR)) == 3
        clock.advance(1 * DAY)  # 30 days after they were really written
        s.purge_expired()
        assert s.get_reads(future, INVESTIGATOR) == []
        assert s.health().live_days == ()


def test_step_back_after_untrusted_forward_step_keeps_no_read_longer(tmp_path: Path) -> None:
    clock, trust = FakeClock(T0), Trust()
    with _open(tmp_path / "s.db", MemoryKeySource(), clock, trust) as s:
        _put(s, clock, 1, 8)
        clock.step_wall(timedelta(days=40))
        trust.ok = False
        future = _put(s, clock, 3, 9)
        clock.step_wall(timedelta(days=-40))
        trust.ok = True
        s.mark_sent(_pending(s))
        clock.advance(31 * DAY)  # the rule: retention_days + the one-day slack at most
        s.purge_expired()
        assert s.get_reads(future, INVESTIGATOR) == []


def test_raising_predicate_blocks_purge(tmp_path: Path) -> None:
    clock = FakeClock(T0)

    def broken() -> bool:
        raise OSError("adjtimex failed")

    with open_store(tmp_path / "s.db", clock=clock, retention_days=1) as s:
        ids = _put(s, clock, 2, 10)
        s.mark_sent(ids)
        s.set_clock_trusted(broken)
        clock.advance(3 * DAY)
        assert s.purge_expired().reads == 0
        assert s.health().purge_blocked == BLOCKED_UNTRUSTED
        s.set_clock_trusted(None)
        assert s.purge_expired().reads == 2
        assert s.health().purge_blocked is None
