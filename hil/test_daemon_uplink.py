"""End to end on the simulated rig: footage -> real models -> store -> mTLS uplink -> agency.

The reference ingest service runs on loopback with test certificates and publishes a signed
hotlist holding one plate of the sample footage. The real daemon must fetch and verify the list,
read the footage, raise an alert for that plate, and deliver every read and the alert, once.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from firmware.link.hotlists import sign_hotlist
from hil.certs import make_test_pki
from hil.ingest_server import IngestServer
from hil.rig import REPO, SimulatedRig, replay_config
from inference.hotlist_matcher import HotlistEntry

pytestmark = pytest.mark.hil


def test_reads_and_a_hotlist_alert_reach_the_agency_once(tmp_path: Path) -> None:
    truth = json.loads((REPO / "firmware" / "sample" / "footage.json").read_text())
    # A late vehicle: on a first boot the list is fetched while the replay (run as fast as it
    # can be read) is already going, and an early vehicle could pass before the list arrives.
    wanted = truth["vehicles"][4]["text"]
    pki = make_test_pki(tmp_path / "pki")
    agency = Ed25519PrivateKey.generate()
    pub = base64.b64encode(agency.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    blob = sign_hotlist(agency, "stolen", 1, [HotlistEntry(wanted, "stolen vehicle", 9)])
    with IngestServer(pki.server.cert, pki.server.key, pki.ca) as srv:
        srv.publish_hotlist("stolen", 1, blob)
        rig = SimulatedRig(tmp_path, replay_config(pki.device_id) + f"""
[uplink]
endpoint = "{srv.url}"
ca_file = "{pki.ca}"
cert_file = "{pki.client.cert}"
key_file = "{pki.client.key}"
backoff_initial_s = 0.2
drain_rate_per_s = 1000.0
idle_poll_s = 0.2

[hotlists]
agency_public_key = "{pub.decode()}"
names = ["stolen"]
""")
        try:
            rig.start()
            rig.wait_ready()
            rig.wait_for(lambda: rig.log_events("replay finished"), 120, "end of the replay")
            rig.wait_for(lambda: srv.summary()["reads"] >= len(rig.reads)
                         and srv.summary()["alerts"] >= 1, 30, "delivery to the agency")
            rig.wait_for(lambda: rig.control("status")["queue_depth"] == {"alerts": 0, "reads": 0},
                         10, "the outbox to empty")
            status = rig.control("status")
            rc, _ = rig.stop()
        finally:
            rig.close()
        summary = srv.summary()
    assert rc == 0
    n_reads = len(rig.reads)
    assert n_reads >= 1
    alerted = [r for r in rig.reads if r["alerts"]]
    assert [r["plate"] for r in alerted] == [wanted]
    assert alerted[0]["alerts"][0]["hotlist"] == "stolen"
    assert summary["reads"] == n_reads and summary["alerts"] == 1
    assert summary["duplicates"] == 0
    assert status["queue_depth"] == {"alerts": 0, "reads": 0}
