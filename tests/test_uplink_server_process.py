"""The reference ingest service as a separate process: port handshake, control endpoint."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from drivers.clock import FakeClock
from firmware.benchmarks.memory_outbox import MemoryOutbox
from firmware.link.state import LinkStateMachine
from firmware.uplink.settings import UplinkSettings
from firmware.uplink.transport import HttpsTransport
from firmware.uplink.worker import Uplink
from hil.certs import CertPair, TestPki

REPO = Path(__file__).resolve().parents[1]


def test_subprocess_server_handshake_faults_and_summary(tmp_path: Path) -> None:
    pki_dir = tmp_path / "pki"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hil.ingest_server", "--make-pki", str(pki_dir), "--port", "0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout is not None
        tag, port = proc.stdout.readline().split()
        assert tag == "VIGIL-INGEST-PORT" and int(port) > 0
        pki = TestPki(
            ca=pki_dir / "ca.crt",
            server=CertPair(pki_dir / "server.crt", pki_dir / "server.key"),
            client=CertPair(pki_dir / "client.crt", pki_dir / "client.key"),
            server_expired=CertPair(pki_dir / "x", pki_dir / "x"),
            server_foreign=CertPair(pki_dir / "x", pki_dir / "x"),
            server_wrong_host=CertPair(pki_dir / "x", pki_dir / "x"),
            client_foreign=CertPair(pki_dir / "x", pki_dir / "x"),
            consumer=CertPair(pki_dir / "x", pki_dir / "x"),
            device_id="vigil-test-0001",
        )
        clock = FakeClock()
        s = UplinkSettings(endpoint=f"https://127.0.0.1:{port}", ca_file=str(pki.ca),
                           cert_file=str(pki.client.cert), key_file=str(pki.client.key),
                           device_id=pki.device_id, timeout_s=3)
        control = HttpsTransport(s, clock)
        r = control.request("POST", "/_control/fault",
                            json.dumps({"mode": "half_accept", "remaining": 1}).encode())
        assert r.status == 200
        ob = MemoryOutbox()
        for i in range(6):
            ob.add("read", f"r{i}", {"n": i}, datetime(2026, 11, 23, tzinfo=UTC))
        with Uplink(s, ob, LinkStateMachine(clock), clock, rng=random.Random(0),
                    clock_synced=lambda: False) as up:
            up.step()
            assert ob.outbox_depth()["reads"] == 3
            for _ in range(5):
                clock.advance(up.step())
        assert ob.outbox_depth()["reads"] == 0
        state = json.loads(control.request("GET", "/_control/state").body)
        assert state["reads"] == 6 and state["duplicates"] == 0 and state["batches"] >= 2
        control.close()
    finally:
        proc.terminate()
        proc.wait(timeout=5)
