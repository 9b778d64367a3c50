"""SIGTERM with a request in flight: the uplink worker returns at once, well inside systemd's
TimeoutStopSec, and the abandoned batch is left unmarked for the next start (item 5)."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from drivers.clock import SystemClock
from firmware.benchmarks.memory_outbox import MemoryOutbox
from firmware.link.state import LinkStateMachine
from firmware.uplink.settings import UplinkSettings
from firmware.uplink.worker import Uplink
from hil.certs import TestPki
from hil.ingest_server import Fault, IngestServer

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _settings(pki: TestPki, url: str) -> UplinkSettings:
    return replace(UplinkSettings(), endpoint=url, ca_file=str(pki.ca),
                   cert_file=str(pki.client.cert), key_file=str(pki.client.key),
                   device_id=pki.device_id, timeout_s=20.0, idle_poll_s=0.2)


def test_stop_abandons_a_stalled_request_of_both_lanes(pki: TestPki) -> None:
    ob = MemoryOutbox()
    for i in range(5):
        ob.add("read", f"r{i}", {"plate": f"AB{i:04d}"}, T0 + timedelta(seconds=i))
    with IngestServer(pki.server.cert, pki.server.key, pki.ca) as server:
        server.set_fault(Fault(mode="stall", stall_s=30.0))
        clock = SystemClock()
        with Uplink(_settings(pki, server.url), ob, LinkStateMachine(clock), clock,
                    rng=random.Random(3)) as up:
            stop = threading.Event()
            t = threading.Thread(target=up.run, args=(stop,))
            t.start()
            deadline = time.monotonic() + 5
            while server.state.batches == 0 and time.monotonic() < deadline:
                time.sleep(0.01)  # the read batch is now stalled on the server
            ob.add("alert", "r-hot", {"alert_id": "a-hot"}, T0)
            up.send_alert_now()
            time.sleep(0.3)  # the alert lane's request stalls too
            t0 = time.monotonic()
            stop.set()
            t.join(timeout=3)
            took = time.monotonic() - t0
            assert not t.is_alive()
            assert took < 1.5, took
        server.set_fault(None)
    assert ob.outbox_depth() == {"alerts": 1, "reads": 5}  # nothing marked without an ack
    assert up.counters.requests_failed == 0  # an abandoned request is not a link failure
