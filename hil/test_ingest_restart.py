"""Exactly-once across restarts of the agency: the real daemon on the simulated rig uploads to the
reference ingest service running as its own process with ``--db``; the service is SIGKILLed
twice while reads flow and started again on the same port and file. Every read the daemon
printed is then either held by the service (once) or still in the daemon's outbox: nothing the
service acknowledged is forgotten, nothing is stored twice."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drivers.clock import SystemClock
from firmware.uplink.settings import UplinkSettings
from firmware.uplink.transport import HttpsTransport
from hil.certs import TestPki
from hil.ingest_ledger import Ledger
from hil.ingest_server import IngestState
from hil.rig import REPO, SimulatedRig, replay_config

pytestmark = pytest.mark.hil


class _Service:
    """``python -m hil.ingest_server --db`` as a child process, on a port kept across restarts."""

    def __init__(self, pki: TestPki, db: Path) -> None:
        self.pki, self.db, self.port = pki, db, 0
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        pki = self.pki
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hil.ingest_server", "--port", str(self.port), "--db",
             str(self.db), "--cert", str(pki.server.cert), "--key", str(pki.server.key),
             "--client-ca", str(pki.ca)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        assert line[:1] == ["VIGIL-INGEST-PORT"], line
        self.port = int(line[1])

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def read_ids(self) -> list[str]:
        """The read ids the running service holds (over mutual TLS, like the unit)."""
        s = UplinkSettings(endpoint=f"https://127.0.0.1:{self.port}", ca_file=str(self.pki.ca),
                           cert_file=str(self.pki.client.cert),
                           key_file=str(self.pki.client.key), device_id=self.pki.device_id)
        t = HttpsTransport(s, SystemClock())
        try:
            ids: list[str] = json.loads(t.request("GET", "/_control/read-ids").body)
            return ids
        finally:
            t.close()


def _config(pki: TestPki, port: int) -> str:
    return replay_config(pki.device_id, loop=True) + f"""
[uplink]
endpoint = "https://127.0.0.1:{port}"
ca_file = "{pki.ca}"
cert_file = "{pki.client.cert}"
key_file = "{pki.client.key}"
batch_max_reads = 2
drain_rate_per_s = 4.0
backoff_initial_s = 0.2
backoff_max_s = 1.0
idle_poll_s = 0.2
"""


def test_a_killed_and_restarted_ingest_service_still_counts_exactly_once(
        pki: TestPki, tmp_path: Path) -> None:
    service = _Service(pki, tmp_path / "ingest.db")
    service.start()
    rig = SimulatedRig(tmp_path, _config(pki, service.port))
    try:
        rig.start()
        rig.wait_ready()
        for kill in range(2):
            floor = 3 * (kill + 1)
            rig.wait_for(lambda f=floor: len(service.read_ids()) >= f, 120,
                         f"{floor} reads at the service before kill {kill}")
            before = service.read_ids()
            service.kill()  # mid-traffic: a batch may be stored with its answer lost
            time.sleep(1.0)
            service.start()
            after = service.read_ids()
            assert after[:len(before)] == before, "the restarted service forgot reads"
        rig.wait_for(lambda: len(service.read_ids()) >= 9, 120, "reads after the restarts")
        rc, _ = rig.stop()
        held = service.read_ids()
        service.kill()
    finally:
        rig.close()
        if service.proc is not None and service.proc.poll() is None:
            service.kill()
    assert rc == 0
    store = rig.open_store()
    try:
        queued = {it.read_id for it in store.next_outbox_batch(10_000, 1 << 30, False)
                  if it.kind != "alert"}
    finally:
        store.close()
    printed = {r["read_id"] for r in rig.reads}
    assert len(held) == len(set(held)), "a read stored twice"
    assert set(held) <= printed
    # Each printed read is at the service or still queued: nothing acknowledged was lost.
    assert printed == set(held) | queued, sorted(printed - set(held) - queued)
    # The file alone gives the same answer (what a third start would load).
    state = IngestState()
    ledger = Ledger(tmp_path / "ingest.db")
    ledger.load(state)
    ledger.close()
    assert list(state.reads) == held
    assert all(state.receipts[rid] >= 1 for rid in held)
