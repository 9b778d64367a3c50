"""OTA steps reported upstream: the real OTA worker and the real uplink (mutual TLS) against the
reference ingest service, which keeps the latest report and every step once.

The steps survive the restarts an update is made of (the step journal, ``ota/events.py``) and
the steps taken outside the daemon (``vigil ota boot`` rolling back before a start).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from drivers.clock import SystemClock
from firmware.benchmarks.memory_outbox import MemoryOutbox
from firmware.link.state import LinkStateMachine
from firmware.uplink.mqtt_topics import Topics
from firmware.uplink.worker import STATUS_MIN_INTERVAL_S, Uplink
from hil.certs import TestPki
from hil.ingest_server import Fault, IngestServer
from hil.mosquitto import Mosquitto
from ota.cli import main as ota_main
from ota.slots import Phase
from tests.test_ota_worker import Unit, _run_until
from tests.test_uplink_client import settings_for
from tests.test_uplink_mqtt import AGENCY, mqtt_settings, wait_until


@pytest.fixture
def server(pki: TestPki):
    with IngestServer(pki.server.cert, pki.server.key, pki.ca) as srv:
        yield srv


def _steps(server: IngestServer, device: str) -> list[str]:
    return [e["step"] for e in server.status_of(device)["ota_steps"]]


def test_every_step_reaches_the_ingest_service_across_restarts(
    pki: TestPki, server: IngestServer, tmp_path: Path,
) -> None:
    u = Unit(tmp_path)
    up = Uplink(settings_for(pki, server.url), MemoryOutbox(), LinkStateMachine(u.clock),
                u.clock, rng=random.Random(1))
    dev = pki.device_id

    def report(w: object) -> None:
        u.clock.advance(STATUS_MIN_INTERVAL_S + 0.1)
        up.step()

    with up:
        u.release("1.1.0")
        old = u.worker()
        up.add_status("ota", old)
        _run_until(old, lambda: bool(u.restarts))  # staged, switched: the daemon exits 75
        report(old)
        assert _steps(server, dev) == ["downloading", "verified", "staged", "trial"]
        latest = server.status_of(dev)["latest"]["ota"]
        assert latest["phase"] == "trial" and latest["slot"] == "b"

        # the new version's daemon: a fresh worker (and uplink registration), same journal
        new = u.worker(on_change=up.notify)
        up.add_status("ota", new)
        report(new)  # it repeats the steps it cannot know were acknowledged: kept once
        assert _steps(server, dev) == ["downloading", "verified", "staged", "trial"]
        _run_until(new, lambda: (u.fs.load() or u.fs.init("x")).phase is Phase.IDLE)
        report(new)
        assert _steps(server, dev)[-2:] == ["trial", "committed"]
        latest = server.status_of(dev)["latest"]["ota"]
        assert (latest["version"], latest["floor"], latest["committed_slot"]) == \
            ("1.1.0", "1.1.0", "b")
        sent = server.state.requests["/v1/status"]
        report(new)  # nothing new: nothing sent
        assert server.state.requests["/v1/status"] == sent

        # a bad version: the rollback and its reason go up, even when the first try fails
        u.release("1.2.0")
        _run_until(new, lambda: len(u.restarts) == 2)
        u.healthy = False
        trial = u.worker()
        up.add_status("ota", trial)
        _run_until(trial, lambda: len(u.restarts) == 3)
        server.set_fault(Fault(mode="status", status=503, paths=("/v1/status",), remaining=1))
        report(trial)
        assert "rolled_back" not in _steps(server, dev)
        report(trial)  # retried
        rolled = [e for e in server.status_of(dev)["ota_steps"] if e["step"] == "rolled_back"]
        assert len(rolled) == 1 and "frames" in rolled[0]["detail"]
        assert rolled[0]["result"] == "failed"
        assert server.status_of(dev)["latest"]["ota"]["last"].startswith(
            "rolled back from 1.2.0")


def test_a_rollback_by_the_boot_check_is_reported_by_the_next_daemon(
    pki: TestPki, server: IngestServer, tmp_path: Path,
) -> None:
    """A version that never runs its gate is rolled back by `vigil ota boot` (no daemon, no
    uplink then); the old version's daemon reports that step when it starts."""
    u = Unit(tmp_path)  # its fake clock is a day behind: the trial is past its deadline
    u.release("1.1.0")
    _run_until(u.worker(), lambda: bool(u.restarts))
    assert ota_main(["ota", "boot", "--root", str(u.fs.root)]) == 0
    state = u.fs.load()
    assert state is not None and state.active == "a" and "not passed within" in state.last
    up = Uplink(settings_for(pki, server.url), MemoryOutbox(), LinkStateMachine(u.clock),
                u.clock, rng=random.Random(1))
    with up:
        up.add_status("ota", u.worker())
        up.step()
    steps = server.status_of(pki.device_id)["ota_steps"]
    assert steps[-1]["step"] == "rolled_back" and steps[-1]["detail"] == state.last
    # and the daemon copies it into the audit chain when its worker starts, once
    u.audit.clear()
    _run_until(u.worker(), lambda: ("ota.rolled_back", "failed") in u.audit)
    _run_until(u.worker(), lambda: True)
    assert u.audit.count(("ota.rolled_back", "failed")) == 1


def test_status_reports_have_an_mqtt_topic() -> None:
    assert Topics("agency", "site", "cam-1").upload("/v1/status") == \
        "vigil/agency/site/cam-1/status"


def test_status_reports_over_mqtt_reach_the_consumer(pki: TestPki, broker: Mosquitto,
                                                     tmp_path: Path) -> None:
    """Over MQTT the report is a PUBLISH to the unit's `status` topic (the reference ACL lets
    a unit write only its own), acknowledged by the broker's PUBACK; the example consumer
    keeps each step once."""
    from firmware.uplink.mqtt import MqttTransport
    from hil.mqtt_consumer import DedupConsumer

    u = Unit(tmp_path)
    u.release("1.1.0")
    w = u.worker()
    _run_until(w, lambda: bool(u.restarts))
    consumer = DedupConsumer(broker.url, pki.ca, pki.consumer.cert, pki.consumer.key,
                             AGENCY, group="ota-status", client_id="ota-status-1").start()
    assert consumer.connected.wait(10)
    settings = mqtt_settings(pki, broker)
    t = MqttTransport(settings, SystemClock(), rng=random.Random(3)).start()
    try:
        assert t.wait_connected(10)
        up = Uplink(settings, MemoryOutbox(), LinkStateMachine(u.clock), u.clock, transport=t,
                    rng=random.Random(1))
        up.add_status("ota", w)
        u.clock.advance(STATUS_MIN_INTERVAL_S + 0.1)
        up.step()
        assert wait_until(lambda: [e["step"] for e in consumer.ota_steps.get(pki.device_id, [])]
                          == ["downloading", "verified", "staged", "trial"])
        assert consumer.ota[pki.device_id]["phase"] == "trial"
        assert w.upstream() is None  # the PUBACK acknowledged it
    finally:
        t.close()
        consumer.close(end_session=True)
