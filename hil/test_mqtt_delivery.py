"""MQTT delivery on the simulated rig: the real daemon (`vigil run`, `[uplink] protocol =
"mqtt"`) and a real Mosquitto on loopback (TLS, client certificates required), observed by the
de-duplicating agency consumer of hil/mqtt_consumer.py.

* An outage with a backlog in the encrypted store, broker restarts while it drains, and a
  SIGKILL of the daemon in the middle of the drain: every read reaches the agency exactly once
  (received, duplicates seen, missing = 0), and the broker tells the dashboard the unit vanished
  (its last will). Short here; the long one (more reads, more restarts) is marked slow.
* A simulated day without the broker (the uplink on a fake clock, the broker really down): the
  backoff holds the connection attempts down, nothing piles up in the MQTT client, and once the
  broker is back every read of the day arrives, once.
* An alert raised while a backlog drains overtakes it: it reaches the subscriber in under 1 s.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.clock import FakeClock, SystemClock
from firmware.link.state import LinkStateMachine
from firmware.uplink.mqtt import MqttTransport
from firmware.uplink.settings import UplinkSettings
from firmware.uplink.worker import Uplink
from hil.certs import TestPki
from hil.mosquitto import Mosquitto
from hil.mqtt_consumer import DedupConsumer
from hil.rig import SimulatedRig, replay_config
from tests.kit import make_alert, make_read, open_store

pytestmark = pytest.mark.hil

AGENCY, SITE = "rig", "bench-1"


def wait_until(pred: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def consumer(broker: Mosquitto, pki: TestPki) -> Iterator[DedupConsumer]:
    c = DedupConsumer(broker.url, pki.ca, pki.consumer.cert, pki.consumer.key, AGENCY,
                      client_id=f"agency-{time.monotonic_ns()}").start()
    assert c.connected.wait(10)
    yield c
    c.close(end_session=True)


def _config(pki: TestPki, broker: Mosquitto, state: Path, drain_rate: float) -> str:
    return replay_config(pki.device_id, state_dir=state) + f"""
[uplink]
protocol = "mqtt"
mqtt_broker = "{broker.url}"
mqtt_agency = "{AGENCY}"
mqtt_site = "{SITE}"
ca_file = "{pki.ca}"
cert_file = "{pki.client.cert}"
key_file = "{pki.client.key}"
batch_max_reads = 100
backoff_initial_s = 0.2
backoff_max_s = 2.0
connect_timeout_s = 2.0
timeout_s = 5.0
drain_rate_per_s = {drain_rate}
idle_poll_s = 0.2
mqtt_keepalive_s = 10
"""


def _backlog(rig: SimulatedRig, n: int) -> set[str]:
    """``n`` reads already in the daemon's store, as if a long outage had piled them up."""
    store = rig.open_store()
    rng = random.Random(5)
    ids: set[str] = set()
    try:
        futures = []
        for _ in range(n):
            r = make_read(rng, captured_at=SystemClock().utcnow())
            ids.add(r.read_id)
            futures.append(store.submit_read(r))
            if len(futures) >= 1000:
                for f in futures:
                    f.result()
                futures.clear()
        for f in futures:
            f.result()
    finally:
        store.close()
    return ids


def _outage_restarts_and_kill(pki: TestPki, broker: Mosquitto, consumer: DedupConsumer,
                              tmp_path: Path, n: int, restarts: int, drain_rate: float) -> None:
    state = tmp_path / "state"
    rig = SimulatedRig(tmp_path, _config(pki, broker, state, drain_rate))
    expected = _backlog(rig, n)
    got = lambda: len(consumer.ids("reads") & expected)  # noqa: E731
    broker.stop()  # the outage: the daemon starts with its backlog and no broker
    runs: list[SimulatedRig] = []
    try:
        rig.start()
        runs.append(rig)
        rig.wait_ready()
        rig.wait_for(lambda: any("mqtt connect failed" in line for line in rig.stderr_lines),
                     30, "the daemon to find the broker down")
        time.sleep(2.0)
        assert got() == 0
        broker.start()
        for i in range(restarts):  # the broker restarts while the backlog drains
            target = n * (i + 1) // (2 * (restarts + 1))
            wait_until(lambda t=target: got() >= t, 120, f"{target} reads before restart {i}")
            broker.restart(down_s=1.0)
        wait_until(lambda: got() >= n // 2, 120, "half the backlog")
        assert rig.proc is not None
        rig.proc.send_signal(signal.SIGKILL)  # in the middle of the drain
        rig.proc.wait(timeout=10)
        rig.close()
        wait_until(lambda: consumer.health.get(pki.device_id, {}).get("reason") == "lost", 30,
                   "the last will on the health topic")
        assert got() < n, "the drain finished before the kill: raise n or lower the rate"
        (tmp_path / "notify.sock").unlink()
        rig = SimulatedRig(tmp_path)  # the same config and state: systemd's restart
        rig.start()
        runs.append(rig)
        rig.wait_ready()
        wait_until(lambda: consumer.health.get(pki.device_id, {}).get("online") is True, 30,
                   "the birth message")
        rig.wait_for(lambda: rig.log_events("replay finished"), 120, "end of the replay")
        live = {r["read_id"] for run in runs for r in run.reads}
        expected |= live
        wait_until(lambda: expected <= consumer.ids("reads"), 240, "every read at the agency")
        rig.wait_for(lambda: rig.control("status")["queue_depth"] == {"alerts": 0, "reads": 0},
                     30, "the outbox to empty")
        rc, took = rig.stop()
    finally:
        for r in runs:
            r.close()
        if broker.proc is None:
            broker.start()
    assert rc == 0 and took < 4.5  # the goodbye fits in systemd's TimeoutStopSec (5 s)
    summary = consumer.summary()
    received = consumer.ids("reads")
    missing = expected - received
    print(json.dumps({"expected": len(expected), "received": len(received & expected),
                      "duplicates_seen": summary["duplicates_seen"], "missing": len(missing),
                      "messages": summary["messages"]}))
    assert missing == set()
    assert received == expected  # nothing else, nothing twice (the consumer keys by id)
    assert all(consumer.receipts[i] >= 1 for i in expected)


def test_outage_broker_restarts_and_sigkill_deliver_every_read_once(
        pki: TestPki, broker: Mosquitto, consumer: DedupConsumer, tmp_path: Path) -> None:
    _outage_restarts_and_kill(pki, broker, consumer, tmp_path, n=1500, restarts=1,
                              drain_rate=300.0)


@pytest.mark.slow
def test_long_outage_many_restarts_and_sigkill_deliver_every_read_once(
        pki: TestPki, broker: Mosquitto, consumer: DedupConsumer, tmp_path: Path) -> None:
    _outage_restarts_and_kill(pki, broker, consumer, tmp_path, n=30_000, restarts=4,
                              drain_rate=1500.0)


def test_an_alert_overtakes_a_draining_backlog(
        pki: TestPki, broker: Mosquitto, consumer: DedupConsumer, tmp_path: Path) -> None:
    clock = SystemClock()
    store = open_store(tmp_path / "s.db", clock=clock)
    rng = random.Random(9)
    futures = [store.submit_read(make_read(rng, captured_at=clock.utcnow()))
               for _ in range(20_000)]
    for f in futures:
        f.result()
    settings = UplinkSettings(
        ca_file=str(pki.ca), cert_file=str(pki.client.cert), key_file=str(pki.client.key),
        device_id=pki.device_id, protocol="mqtt", mqtt_broker=broker.url, mqtt_agency=AGENCY,
        mqtt_site=SITE, drain_rate_per_s=1e6, idle_poll_s=0.2)
    session = MqttTransport(settings, clock).start()
    up = Uplink(settings, store, LinkStateMachine(clock), clock, transport=session,
                alert_transport=session)
    stop = threading.Event()
    worker = threading.Thread(target=up.run, args=(stop,), daemon=True)
    latencies: list[float] = []
    try:
        worker.start()
        wait_until(lambda: len(consumer.ids("reads")) >= 500, 60, "the drain to start")
        for _ in range(5):
            r = make_read(rng, captured_at=clock.utcnow())
            a = replace(make_alert(r, rng=rng), raised_at=clock.utcnow())
            t0 = time.monotonic()
            store.put_read(r, [a])
            up.send_alert_now(a.alert_id)
            wait_until(lambda aid=a.alert_id: aid in consumer.ids("alerts"), 5, "the alert")
            latencies.append(time.monotonic() - t0)
            time.sleep(0.2)
        backlog = store.outbox_depth()["reads"]
    finally:
        stop.set()
        worker.join(10)
        up.close()
        store.close()
    print(json.dumps({"alert_latency_ms": [round(x * 1000) for x in latencies],
                      "backlog_left": backlog}))
    assert backlog > 0, "the backlog drained before the alerts: they did not overtake anything"
    assert max(latencies) < 1.0


def test_a_simulated_day_without_the_broker_then_every_read_once(
        pki: TestPki, broker: Mosquitto, consumer: DedupConsumer, tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 11, 23, 6, 0, tzinfo=UTC))
    store = open_store(tmp_path / "s.db", clock=clock)
    settings = UplinkSettings(
        ca_file=str(pki.ca), cert_file=str(pki.client.cert), key_file=str(pki.client.key),
        device_id=pki.device_id, protocol="mqtt", mqtt_broker=broker.url, mqtt_agency=AGENCY,
        mqtt_site=SITE, batch_max_reads=200, timeout_s=5.0, connect_timeout_s=2.0,
        backoff_initial_s=2.0, backoff_max_s=900.0, drain_rate_per_s=50.0)
    session = MqttTransport(settings, clock, rng=random.Random(7)).start()
    up = Uplink(settings, store, LinkStateMachine(clock), clock, transport=session,
                rng=random.Random(7))
    rng = random.Random(2)
    ids: set[str] = set()
    try:
        assert session.wait_connected(10)
        broker.stop()
        wait_until(lambda: not session.status().connected, 10, "the broker to go")
        end = clock.monotonic() + 24 * 3600
        next_put = clock.monotonic()
        while clock.monotonic() < end:
            if clock.monotonic() >= next_put:
                for _ in range(5):
                    r = make_read(rng, captured_at=clock.utcnow())
                    store.submit_read(r).result()
                    ids.add(r.read_id)
                next_put += 600
            delay = up.step()
            clock.advance(min(max(delay, 1.0), next_put - clock.monotonic() + 0.01))
        attempts = up.counters.requests_failed
        assert 0 < attempts < 24 * 3600 / 150  # the backoff held the probes down
        assert store.outbox_depth()["reads"] == len(ids) == 5 * 144
        # Nothing hoarded in the MQTT client: at most what was in flight when the broker went
        # (the birth message), none of the day's probes.
        assert len(session._client._out_messages) <= 2
        broker.start()
        deadline = time.monotonic() + 120
        while store.outbox_depth()["reads"] and time.monotonic() < deadline:
            clock.advance(up.step())
            time.sleep(0.005)  # real time for the session's own thread and the consumer's
        assert store.outbox_depth()["reads"] == 0
        wait_until(lambda: ids <= consumer.ids("reads"), 30, "the day's reads at the agency")
    finally:
        up.close()
        store.close()
        if broker.proc is None:
            broker.start()
    assert all(consumer.receipts[i] == 1 for i in ids)
    print(json.dumps({"outage_attempts": attempts, "reads": len(ids)}))
