"""SIGTERM while an upload is stalled on the agency: exit 0 well inside TimeoutStopSec (5 s),
and the unacknowledged reads are still in the outbox for the next start (item 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.certs import make_test_pki
from hil.ingest_server import Fault, IngestServer
from hil.rig import SimulatedRig, replay_config

pytestmark = pytest.mark.hil


def test_sigterm_during_a_stalled_upload_exits_0_in_time(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path / "pki")
    with IngestServer(pki.server.cert, pki.server.key, pki.ca) as srv:
        srv.set_fault(Fault(mode="stall", stall_s=60.0))
        rig = SimulatedRig(tmp_path, replay_config(pki.device_id) + f"""
[uplink]
endpoint = "{srv.url}"
ca_file = "{pki.ca}"
cert_file = "{pki.client.cert}"
key_file = "{pki.client.key}"
timeout_s = 20.0
idle_poll_s = 0.2
""")
        try:
            rig.start()
            rig.wait_ready()
            rig.wait_for(lambda: len(rig.reads) >= 1 and srv.state.batches >= 1, 120,
                         "a read batch stalled on the agency")
            rc, took = rig.stop()
            with rig.open_store() as store:
                depth = store.outbox_depth()
        finally:
            rig.close()
        srv.set_fault(None)
    assert rc == 0
    assert took < 4.5, took
    assert depth["reads"] >= 1  # the stalled batch was never acknowledged, so never marked
