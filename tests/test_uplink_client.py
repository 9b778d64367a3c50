"""Uplink against the real loopback ingest service over mutual TLS, including its faults."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drivers.clock import FakeClock, SystemClock
from firmware.benchmarks.memory_outbox import MemoryOutbox
from firmware.link.state import LinkState, LinkStateMachine
from firmware.uplink.settings import UplinkSettings
from firmware.uplink.transport import UplinkConfigError, build_ssl_context
from firmware.uplink.worker import Uplink
from hil.certs import TestPki
from hil.ingest_server import Fault, IngestServer

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
def server(pki: TestPki):
    with IngestServer(pki.server.cert, pki.server.key, pki.ca) as srv:
        yield srv


def settings_for(pki: TestPki, url: str, **kw: object) -> UplinkSettings:
    base = UplinkSettings(
        endpoint=url, ca_file=str(pki.ca), cert_file=str(pki.client.cert),
        key_file=str(pki.client.key), device_id=pki.device_id, batch_max_reads=50,
        timeout_s=2.0, connect_timeout_s=2.0, backoff_initial_s=1.0, backoff_max_s=60.0,
        drain_rate_per_s=10_000.0,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def fill(outbox: MemoryOutbox, n: int, alerts: int = 0) -> None:
    for i in range(n):
        outbox.add("read", f"r{i:06d}", {"plate": f"AB{i:04d}", "conf": 0.9},
                   T0 + timedelta(seconds=i))
    for i in range(alerts):
        outbox.add("alert", f"r{i:06d}", {"alert_id": f"a{i}", "plate": f"AB{i:04d}"},
                   T0 + timedelta(seconds=i))


def make(pki: TestPki, server: IngestServer, outbox: MemoryOutbox, **kw: object):
    clock = FakeClock(T0)
    link = LinkStateMachine(clock)
    up = Uplink(settings_for(pki, server.url, **kw), outbox, link, clock, rng=random.Random(1))
    return up, clock, link


def drain(up: Uplink, clock: FakeClock, outbox: MemoryOutbox, max_steps: int = 500) -> None:
    for _ in range(max_steps):
        d = outbox.outbox_depth()
        if d["alerts"] == 0 and d["reads"] == 0:
            return
        delay = up.step()
        clock.advance(delay)
    raise AssertionError(f"outbox not drained: {outbox.outbox_depth()}")


def test_batches_delivered_once_alerts_first(pki: TestPki, server: IngestServer) -> None:
    ob = MemoryOutbox()
    fill(ob, 120, alerts=3)
    up, clock, link = make(pki, server, ob)
    with up:
        drain(up, clock, ob)
    assert len(server.state.reads) == 120 and len(server.state.alerts) == 3
    assert [k for k, _ in server.state.order[:3]] == ["alerts"] * 3
    assert server.summary()["duplicates"] == 0
    assert link.state is LinkState.UP
    st = up.status().as_dict()
    assert list(st) == ["link", "last_success", "last_error", "backlog", "bytes_today",
                        "daily_bytes_cap", "next_attempt_in_s", "reads_sent", "alerts_sent",
                        "requests_failed", "partial_batches", "rejected_permanent"]  # pinned
    assert list(st["link"]) == ["state", "reason", "seconds_in_state", "consecutive_failures",
                                "registered", "signal_dbm", "transitions"]
    assert list(st["link"]["transitions"][0]) == ["at", "from", "to", "reason"]
    assert st["reads_sent"] == 120 and st["alerts_sent"] == 3 and st["bytes_today"] > 0


def test_half_accepted_batch_retries_only_the_rest(pki: TestPki, server: IngestServer) -> None:
    ob = MemoryOutbox()
    fill(ob, 40)
    up, clock, link = make(pki, server, ob, batch_max_reads=40)
    link.on_success(0.1)
    link.on_success(0.1)  # up: full-size batches (a down link sends small probes)
    server.set_fault(Fault(mode="half_accept", remaining=1, paths=("/v1/reads",)))
    with up:
        assert up.step() == 0.0
        assert ob.outbox_depth()["reads"] == 20
        drain(up, clock, ob)
    assert len(server.state.reads) == 40
    # the retry carried only the 20 rejected ones: no id arrived twice
    assert max(server.state.receipts.values()) == 1
    assert up.counters.partial_batches == 1


@pytest.mark.parametrize(
    "fault,failure",
    [
        (Fault(mode="status", status=503, remaining=2), "http_5xx"),
        (Fault(mode="drop_before", remaining=2), "reset"),
        (Fault(mode="drop_after", remaining=2), "reset"),
        (Fault(mode="reset_mid_body", remaining=2), "reset"),
        (Fault(mode="stall", stall_s=5, remaining=1), "timeout"),
    ],
)
def test_flaky_server_every_read_once(
    pki: TestPki, server: IngestServer, fault: Fault, failure: str
) -> None:
    ob = MemoryOutbox()
    fill(ob, 30)
    up, clock, link = make(pki, server, ob, timeout_s=0.5, batch_max_reads=30)
    server.set_fault(fault)
    with up:
        delay = up.step()
        assert delay > 0  # failed: backing off
        assert ob.outbox_depth()["reads"] == 30  # nothing marked without an ack
        assert failure in (up.status().last_error or "")
        drain(up, clock, ob)
    assert set(server.state.reads) == {f"r{i:06d}" for i in range(30)}
    assert link.state in (LinkState.UP, LinkState.DEGRADED)


def test_backoff_grows_with_jitter_and_resets(pki: TestPki, server: IngestServer) -> None:
    ob = MemoryOutbox()
    fill(ob, 5)
    up, clock, link = make(pki, server, ob, backoff_initial_s=2.0, backoff_max_s=30.0)
    server.set_fault(Fault(mode="status", status=500))
    delays = []
    with up:
        for _ in range(7):
            d = up.step()
            delays.append(d)
            clock.advance(d)
        assert link.state is LinkState.DOWN
        for n, d in enumerate(delays):
            cap = min(30.0, 2.0 * 2**n)
            assert cap / 2 <= d <= cap
        server.set_fault(None)
        drain(up, clock, ob)
    assert up._backoff.failures == 0


def test_alert_kick_skips_backoff(pki: TestPki, server: IngestServer) -> None:
    ob = MemoryOutbox()
    fill(ob, 5)
    up, clock, _ = make(pki, server, ob, backoff_initial_s=100.0, backoff_max_s=100.0)
    server.set_fault(Fault(mode="status", status=502, remaining=1))
    with up:
        assert up.step() >= 50  # backing off
        clock.advance(3)
        ob.add("alert", "r-hot", {"alert_id": "a-hot"}, T0)
        up.send_alert_now()
        up.step()
        assert "a-hot" in server.state.alerts
        assert ob.outbox_depth() == {"alerts": 0, "reads": 5}  # reads still wait their turn


def test_byte_budget_stops_reads_not_alerts(pki: TestPki, server: IngestServer) -> None:
    ob = MemoryOutbox()
    fill(ob, 200)
    up, clock, _ = make(pki, server, ob, batch_max_reads=20, daily_bytes_cap=3000)
    with up:
        for _ in range(30):
            clock.advance(min(up.step(), 1.0))
        sent = len(server.state.reads)
        assert 0 < sent < 200
        assert up.status().bytes_today >= 3000
        ob.add("alert", "x", {"alert_id": "a-x"}, T0)
        up.send_alert_now()
        up.step()
        assert "a-x" in server.state.alerts
        assert len(server.state.reads) == sent
        clock.advance(25 * 3600)  # a new day (monotonic and wall)
        up.step()
        assert len(server.state.reads) > sent


def test_images_only_when_configured(pki: TestPki, server: IngestServer) -> None:
    ob = MemoryOutbox()
    ob.add("read", "r1", {"plate": "X1", "image_jpeg": b"\xff\xd8jpeg"}, T0)
    up, _clock, _ = make(pki, server, ob)
    with up:
        up.step()
    assert "image_jpeg" not in server.state.reads["r1"]["data"]
    ob2 = MemoryOutbox()
    ob2.add("read", "r2", {"plate": "X2", "image_jpeg": b"\xff\xd8jpeg"}, T0)
    up2, _, _ = make(pki, server, ob2, send_images=True)
    with up2:
        up2.step()
    assert server.state.reads["r2"]["data"]["image_jpeg"] == "/9hqcGVn"


def test_drain_rate_paces_reads(pki: TestPki, server: IngestServer) -> None:
    ob = MemoryOutbox()
    fill(ob, 100)
    up, clock, _ = make(pki, server, ob, batch_max_reads=10, drain_rate_per_s=5.0)
    with up:
        start = clock.monotonic()
        drain(up, clock, ob)
        took = clock.monotonic() - start
    # burst of one batch (10) then 5 reads/s for the other 90
    assert 17 <= took <= 20


@pytest.mark.parametrize("which", ["server_expired", "server_foreign", "server_wrong_host"])
def test_bad_server_certificate_refused(pki: TestPki, which: str) -> None:
    pair = getattr(pki, which)
    with IngestServer(pair.cert, pair.key, pki.ca) as srv:
        ob = MemoryOutbox()
        fill(ob, 3)
        up, _, _link = make(pki, srv, ob)
        with up:
            up.step()
        assert srv.state.batches == 0 and not srv.state.receipts
        assert ob.outbox_depth()["reads"] == 3
        assert "tls" in (up.status().last_error or "")


def test_wrong_client_certificate_rejected(pki: TestPki, server: IngestServer) -> None:
    ob = MemoryOutbox()
    fill(ob, 3)
    clock = FakeClock(T0)
    s = settings_for(pki, server.url, cert_file=str(pki.client_foreign.cert),
                     key_file=str(pki.client_foreign.key))
    with Uplink(s, ob, LinkStateMachine(clock), clock) as up:
        assert up.step() > 0
    assert server.state.batches == 0
    assert ob.outbox_depth()["reads"] == 3


def test_device_id_must_match_certificate(pki: TestPki, server: IngestServer) -> None:
    ob = MemoryOutbox()
    fill(ob, 2)
    up, _, _ = make(pki, server, ob, device_id="someone-else")
    with up:
        up.step()
    assert not server.state.reads
    assert "http_4xx" in (up.status().last_error or "")


def test_permanent_rejection_is_dead_lettered_and_audited(
        pki: TestPki, server: IngestServer) -> None:
    ob = MemoryOutbox()
    fill(ob, 4)
    up, clock, _ = make(pki, server, ob)
    server.set_fault(Fault(mode="reject", reject_reason="invalid", remaining=1))
    with up:
        up.step()
        clock.advance(100)
        up.step()  # nothing left to send: the rejected items are not retried
    assert ob.outbox_depth()["reads"] == 0 and not server.state.reads
    assert set(ob.dead.values()) == {"invalid"} and len(ob.dead) == 4
    assert [e[2] for e in ob.audit_log] == ["outbox.dead_letter"]  # once, for the batch
    assert up.counters.rejected_permanent == 4


def test_ssl_context_is_pinned_and_strict(pki: TestPki, tmp_path: Path) -> None:
    import ssl

    ctx = build_ssl_context(settings_for(pki, "https://127.0.0.1:1"))
    assert ctx.verify_mode is ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert len(ctx.get_ca_certs()) == 1  # only the pinned CA, no system roots
    with pytest.raises(UplinkConfigError):
        build_ssl_context(settings_for(pki, "https://x", ca_file=str(tmp_path / "none.pem")))
    with pytest.raises(UplinkConfigError):
        Uplink(settings_for(pki, "http://127.0.0.1:1"), MemoryOutbox(),
               LinkStateMachine(FakeClock()), FakeClock())


def test_run_stops_promptly_without_losing_in_flight(pki: TestPki, server: IngestServer) -> None:
    ob = MemoryOutbox()
    fill(ob, 10)
    clock = SystemClock()
    s = settings_for(pki, server.url, timeout_s=1.0)
    server.set_fault(Fault(mode="drop_before"))
    up = Uplink(s, ob, LinkStateMachine(clock), clock, rng=random.Random(2))
    stop = threading.Event()
    t = threading.Thread(target=up.run, args=(stop,))
    t.start()
    time.sleep(0.3)
    stop.set()
    t.join(timeout=3)
    assert not t.is_alive()
    assert ob.outbox_depth()["reads"] == 10  # nothing marked sent without an ack
    server.set_fault(None)
    stop2 = threading.Event()
    up2 = Uplink(s, ob, LinkStateMachine(clock), clock)
    t2 = threading.Thread(target=up2.run, args=(stop2,))
    t2.start()
    deadline = time.monotonic() + 5
    while ob.outbox_depth()["reads"] and time.monotonic() < deadline:
        time.sleep(0.05)
    stop2.set()
    t2.join(timeout=3)
    up.close()
    up2.close()
    assert len(server.state.reads) == 10


def test_alert_overtakes_a_draining_backlog_within_a_second(
    pki: TestPki, server: IngestServer
) -> None:
    ob = MemoryOutbox()
    fill(ob, 3000)
    clock = SystemClock()
    s = settings_for(pki, server.url, batch_max_reads=200, idle_poll_s=0.2)
    with Uplink(s, ob, LinkStateMachine(clock), clock) as up:
        stop = threading.Event()
        t = threading.Thread(target=up.run, args=(stop,))
        t.start()
        try:
            deadline = time.monotonic() + 10
            while len(server.state.reads) < 200 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert ob.outbox_depth()["reads"] > 0  # still draining
            t0 = time.monotonic()
            ob.add("alert", "r-hot", {"alert_id": "a-hot"}, T0)
            up.send_alert_now()
            while "a-hot" not in server.state.alerts and time.monotonic() - t0 < 5:
                time.sleep(0.002)
            latency = time.monotonic() - t0
        finally:
            stop.set()
            t.join(timeout=5)
    assert "a-hot" in server.state.alerts and latency < 1.0


def test_alert_lane_does_not_wait_for_a_stalled_batch(pki: TestPki, server: IngestServer) -> None:
    ob = MemoryOutbox()
    fill(ob, 50)
    clock = SystemClock()
    s = settings_for(pki, server.url, timeout_s=4.0, idle_poll_s=0.2)
    server.set_fault(Fault(mode="stall", stall_s=3.0, remaining=1, paths=("/v1/reads",)))
    with Uplink(s, ob, LinkStateMachine(clock), clock) as up:
        stop = threading.Event()
        t = threading.Thread(target=up.run, args=(stop,))
        t.start()
        try:
            deadline = time.monotonic() + 5
            while server.state.batches == 0 and time.monotonic() < deadline:
                time.sleep(0.01)  # the read batch is now stalled on the server
            t0 = time.monotonic()
            ob.add("alert", "r-hot", {"alert_id": "a-hot"}, T0)
            up.send_alert_now()
            while "a-hot" not in server.state.alerts and time.monotonic() - t0 < 5:
                time.sleep(0.002)
            latency = time.monotonic() - t0
            while ob.outbox_depth() != {"alerts": 0, "reads": 0} and time.monotonic() < t0 + 8:
                time.sleep(0.02)
        finally:
            stop.set()
            t.join(timeout=8)
    assert "a-hot" in server.state.alerts and latency < 1.0
    assert ob.outbox_depth() == {"alerts": 0, "reads": 0}
    assert server.state.receipts["a-hot"] == 1  # sent by one lane only
    assert not t.is_alive()


def test_alert_lane_backs_off_when_link_is_down(pki: TestPki, server: IngestServer) -> None:
    ob = MemoryOutbox()
    ob.add("alert", "r1", {"alert_id": "a1"}, T0)
    up, clock, _link = make(pki, server, ob, alert_retry_min_s=2.0)
    server.set_fault(Fault(mode="status", status=503, paths=("/v1/alerts",)))
    with up:
        d1 = up.step_alerts()
        assert 1.0 <= d1 <= 2.0 and ob.outbox_depth()["alerts"] == 1
        assert up.step_alerts() > 0 and server.state.requests["/v1/alerts"] == 1  # waits
        clock.advance(d1)
        d2 = up.step_alerts()
        assert 2.0 <= d2 <= 4.0
        server.set_fault(None)
        clock.advance(d2)
        up.step_alerts()
    assert "a1" in server.state.alerts and ob.outbox_depth()["alerts"] == 0
