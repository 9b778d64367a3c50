"""Outage scenario on the simulated rig: the real encrypted Store, the real uplink over mutual
TLS, the reference ingest service on loopback. The link dies for a simulated day while reads
(and some hotlist alerts) keep arriving, then comes back: every read reaches the server exactly
once, alerts before the backlog, and the store's outbox returns to zero."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.clock import FakeClock
from firmware.link.state import LinkState, LinkStateMachine
from firmware.uplink.settings import UplinkSettings
from firmware.uplink.worker import Uplink
from hil.certs import TestPki
from hil.ingest_server import Fault, IngestServer
from storage.store import Store
from tests.kit import make_alert, make_read, open_store

pytestmark = pytest.mark.hil

T0 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


@pytest.fixture
def rig(pki: TestPki, tmp_path: Path) -> Iterator[tuple[Store, IngestServer, FakeClock]]:
    clock = FakeClock(T0)
    store = open_store(tmp_path / "store.db", clock=clock)
    with IngestServer(pki.server.cert, pki.server.key, pki.ca) as srv:
        try:
            yield store, srv, clock
        finally:
            store.close()


def _uplink(pki: TestPki, srv: IngestServer, store: Store, clock: FakeClock) -> Uplink:
    s = UplinkSettings(
        endpoint=srv.url, ca_file=str(pki.ca), cert_file=str(pki.client.cert),
        key_file=str(pki.client.key), device_id=pki.device_id, batch_max_reads=200,
        timeout_s=2.0, backoff_initial_s=2.0, backoff_max_s=900.0, drain_rate_per_s=50.0,
    )
    return Uplink(s, store, LinkStateMachine(clock), clock, rng=random.Random(7))


def _outage_day(
    pki: TestPki, rig: tuple[Store, IngestServer, FakeClock], reads_per_hour: int,
    recovery_fault: Fault | None,
) -> None:
    store, srv, clock = rig
    rng = random.Random(1)
    read_ids: set[str] = set()
    alert_ids: set[str] = set()

    def put(n: int, alert_every: int = 0) -> None:
        futures = []
        for _ in range(n):
            r = make_read(rng, captured_at=clock.utcnow())
            alerts = []
            if alert_every and rng.randrange(alert_every) == 0:
                a = make_alert(r, rng=rng)
                a = type(a)(**{**{f: getattr(a, f) for f in a.__slots__},
                               "raised_at": clock.utcnow()})
                alerts.append(a)
                alert_ids.add(a.alert_id)
            futures.append(store.submit_read(r, alerts))  # group commit, like the pipeline
            read_ids.add(r.read_id)
        for f in futures:
            f.result()

    with _uplink(pki, srv, store, clock) as up:
        # link up: live reads go out within the step
        put(20)
        for _ in range(5):
            clock.advance(up.step())
        assert store.outbox_depth() == {"alerts": 0, "reads": 0}
        assert up._link.state is LinkState.UP

        # a simulated day without a link: every connection is dropped before the request
        srv.set_fault(Fault(mode="drop_before"))
        end = clock.monotonic() + 24 * 3600
        next_put = clock.monotonic()
        attempts_before = srv.state.requests["/v1/reads"]
        while clock.monotonic() < end:
            if clock.monotonic() >= next_put:
                put(max(1, reads_per_hour // 6), alert_every=60)
                next_put += 600
            delay = up.step()
            clock.advance(min(max(delay, 1.0), next_put - clock.monotonic() + 0.01))
        assert up._link.state is LinkState.DOWN
        during = srv.state.requests["/v1/reads"] + srv.state.requests["/v1/alerts"]
        assert during - attempts_before < 24 * 3600 / 150  # backoff held the probes down
        assert not (alert_ids & set(srv.state.alerts))
        backlog = store.outbox_depth()
        assert backlog["reads"] == len(read_ids) - 20 and backlog["alerts"] == len(alert_ids) > 0

        # the link returns (optionally still flaky) and the backlog drains
        srv.set_fault(recovery_fault)
        first_new = len(srv.state.order)
        for _ in range(20_000):
            if store.outbox_depth() == {"alerts": 0, "reads": 0}:
                break
            clock.advance(up.step())
        assert store.outbox_depth() == {"alerts": 0, "reads": 0}

    assert set(srv.state.reads) == read_ids  # every read arrived ...
    assert set(srv.state.alerts) == alert_ids
    assert len(srv.state.reads) == len(read_ids)  # ... and is held once
    kinds = [k for k, _ in srv.state.order[first_new:]]
    assert kinds[: len(alert_ids)] == ["alerts"] * len(alert_ids)  # alerts first
    if recovery_fault is None:
        assert max(srv.state.receipts.values()) == 1


def test_outage_day_every_read_once_alerts_first(pki: TestPki, rig) -> None:  # type: ignore[no-untyped-def]
    _outage_day(pki, rig, reads_per_hour=30, recovery_fault=None)


def test_outage_day_flaky_recovery(pki: TestPki, rig) -> None:  # type: ignore[no-untyped-def]
    # the server stores then drops the connection on the first answers after the outage:
    # the uplink retries, the server deduplicates, nothing is held twice
    _outage_day(pki, rig, reads_per_hour=12,
                recovery_fault=Fault(mode="drop_after", remaining=3, paths=("/v1/reads",)))


@pytest.mark.slow
def test_outage_day_busy_site(pki: TestPki, rig) -> None:  # type: ignore[no-untyped-def]
    _outage_day(pki, rig, reads_per_hour=1200, recovery_fault=Fault(mode="half_accept",
                                                                    remaining=20))
