"""Pure pacing pieces of the uplink: backoff, token bucket, byte budget under clock jumps,
wire encoding and acknowledgement parsing."""

from __future__ import annotations

import gzip
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drivers.clock import FakeClock
from firmware.backoff import Backoff
from firmware.benchmarks.memory_outbox import MemoryOutbox
from firmware.uplink.pacing import BudgetLedger, ByteBudget, TokenBucket
from firmware.uplink.transport import TransportError
from firmware.uplink.wire import encode_batch, parse_ack, wire_id
from storage import MemoryKeySource
from tests.kit import open_store

T0 = datetime(2026, 11, 23, 23, 0, tzinfo=UTC)


def test_backoff_bounds_and_cap() -> None:
    b = Backoff(1.0, 60.0, random.Random(0))
    ds = [b.next_delay() for _ in range(12)]
    for n, d in enumerate(ds):
        cap = min(60.0, 2.0**n)
        assert cap / 2 <= d <= cap
    b.reset()
    assert b.next_delay() <= 1.0


def test_backoff_jitter_spreads_a_fleet() -> None:
    delays = {round(Backoff(10.0, 600.0, random.Random(s)).next_delay(), 3) for s in range(50)}
    assert len(delays) > 40


def test_token_bucket() -> None:
    tb = TokenBucket(5.0, 10, now=0.0)
    assert tb.available(0.0) == 10
    tb.take(10, 0.0)
    assert tb.available(0.0) == 0
    assert tb.seconds_until(5, 0.0) == pytest.approx(1.0)
    assert tb.available(1.0) == 5
    assert tb.available(100.0) == 10  # capped at the burst


def test_budget_rolls_at_utc_midnight() -> None:
    clock = FakeClock(T0)
    bb = ByteBudget(1000, clock)
    bb.spend(1000)
    assert bb.exhausted()
    clock.advance(3600 * 2)  # past midnight but only 2 h of monotonic time
    assert bb.exhausted()
    clock.advance(3600 * 19)  # 21 h since the window opened, new UTC date
    assert not bb.exhausted()


def test_budget_ignores_forward_clock_jump() -> None:
    clock = FakeClock(T0)
    bb = ByteBudget(1000, clock)
    bb.spend(1000)
    clock.step_wall(timedelta(days=3))  # bad RTC / NTP step
    clock.advance(60)
    assert bb.exhausted()


def test_budget_opens_after_a_day_even_if_clock_is_stuck() -> None:
    clock = FakeClock(T0)
    bb = ByteBudget(1000, clock)
    bb.spend(1000)
    clock.advance(24 * 3600)
    clock.step_wall(timedelta(days=-1))  # wall back where it was
    assert not bb.exhausted()
    assert ByteBudget(0, clock).exhausted() is False  # 0 = no cap


def test_budget_spent_today_survives_a_restart(tmp_path: Path) -> None:
    clock, keys = FakeClock(T0), MemoryKeySource()
    with open_store(tmp_path / "s.db", keys, clock) as store:
        assert isinstance(store, BudgetLedger)
        bb = ByteBudget(1000, clock, store)
        bb.spend(600)
        bb.spend(500)
        assert bb.exhausted()
    with open_store(tmp_path / "s.db", keys, clock) as store:  # the restart
        again = ByteBudget(1000, clock, store)
        assert again.used == 1100 and again.exhausted()
        assert store.stats()["uplink_bytes"] == 1100
        clock.advance(3600 * 24)  # the next UTC day, a new process: a fresh budget
        assert not ByteBudget(1000, clock, store).exhausted()


def test_budget_carries_on_in_memory_when_its_ledger_fails() -> None:
    class Broken:
        def uplink_bytes_spent(self, day: str) -> int:
            raise OSError("disk gone")

        def add_uplink_bytes(self, day: str, n: int) -> None:
            raise OSError("disk gone")

    clock = FakeClock(T0)
    bb = ByteBudget(1000, clock, Broken())
    bb.spend(1000)
    assert bb.used == 1000 and bb.exhausted()


def test_encode_batch_and_ids() -> None:
    ob = MemoryOutbox()
    ob.add("alert", "r1", {"alert_id": "a1", "blob": b"\x00\x01"}, T0)
    ob.add("read", "r1", {"plate": "AB1"}, T0)
    items = ob.next_outbox_batch(10, 10_000)
    assert [wire_id(i) for i in items] == ["a1", "r1"]
    bid, body = encode_batch("dev", "reads", items, 6, {"clock_synced": False})
    doc = json.loads(gzip.decompress(body))
    assert doc["batch_id"] == bid and doc["device_id"] == "dev" and doc["clock_synced"] is False
    assert doc["reads"][0]["data"]["blob"] == "AAE=" and doc["reads"][0]["attempt"] == 1
    assert doc["reads"][1]["created_at"] == T0.isoformat()


def test_parse_ack() -> None:
    a = parse_ack(b'{"accepted":["x"],"rejected":[{"id":"y","reason":"retry"}]}')
    assert a.accepted == {"x"} and a.rejected == {"y": "retry"}
    for bad in (b"", b"{", b'{"rejected":[]}', b'{"accepted":[],"rejected":[{"reason":1}]}'):
        with pytest.raises(TransportError) as ei:
            parse_ack(bad)
        assert ei.value.kind == "protocol"


def test_memory_outbox_order_and_limits() -> None:
    ob = MemoryOutbox()
    ob.add("read", "r1", {"p": "x" * 100}, T0 + timedelta(hours=1))
    ob.add("read", "r2", {"p": "y" * 100}, T0)  # older timestamp, inserted later: stays second
    ob.add("alert", "r2", {"alert_id": "a"}, T0)
    assert [i.item_id for i in ob.next_outbox_batch(10, 10_000)] == [
        "a000000003", "r000000001", "r000000002"]
    assert len(ob.next_outbox_batch(10, 130)) == 2  # alert + one read under the byte cap
    assert len(ob.next_outbox_batch(1, 1)) == 1
    assert ob.mark_sent(["r000000001"]) == 1 and ob.mark_sent(["r000000001"]) == 0
    ob.record_attempt(["r000000002"])
    assert ob.next_outbox_batch(10, 10_000)[1].attempts == 1
    assert ob.outbox_depth() == {"alerts": 1, "reads": 1}


def test_plan_waits_out_a_backoff_unless_an_alert_kicks() -> None:
    from firmware.uplink.pacing import PaceInput, plan

    assert plan(PaceInput(10.0, 5.0, 0.0, False, 2.0)).wait_s == 0.0  # no backoff: send
    assert not plan(PaceInput(10.0, 5.0, 0.0, False, 2.0)).only_alerts
    assert plan(PaceInput(10.0, 15.0, 9.0, False, 2.0)).wait_s == 5.0  # backoff, no kick
    assert plan(PaceInput(10.0, 15.0, 9.0, True, 2.0)).wait_s == 5.0  # kick, but tried 1 s ago
    kicked = plan(PaceInput(10.0, 15.0, 7.0, True, 2.0))  # kick, last try 3 s ago
    assert kicked.wait_s == 0.0 and kicked.only_alerts


def test_batch_limit_shrinks_with_the_link() -> None:
    from firmware.link.state import LinkState
    from firmware.uplink.pacing import batch_limit

    assert batch_limit(LinkState.UP, 200) == 200
    assert batch_limit(LinkState.DEGRADED, 200) == 50
    assert batch_limit(LinkState.DOWN, 200) == 10
    assert batch_limit(LinkState.DOWN, 3) == 3
    assert batch_limit(LinkState.DEGRADED, 2) == 1
