"""A hotlist nudge over MQTT on the simulated rig: the real daemon (`protocol = "mqtt"`, hotlists
fetched from the reference ingest service over HTTPS) polls the signed list within seconds of a
nudge instead of at its hourly poll, and takes nothing from the nudge itself: a signed list
sent as the nudge's payload is not applied."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from firmware.link.hotlists import sign_hotlist
from hil.certs import TestPki
from hil.ingest_server import IngestServer
from hil.mosquitto import Mosquitto
from hil.mqtt_consumer import DedupConsumer
from hil.rig import SimulatedRig
from inference.hotlist_matcher import HotlistEntry

pytestmark = pytest.mark.hil

AGENCY = "nudge"


def test_a_hotlist_nudge_triggers_the_signed_poll_and_its_payload_is_ignored(
        pki: TestPki, broker: Mosquitto, tmp_path: Path) -> None:
    agency = Ed25519PrivateKey.generate()
    pub = base64.b64encode(agency.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    v1 = sign_hotlist(agency, "stolen", 1, [HotlistEntry("ABC123", "stolen vehicle", 9)])
    consumer = DedupConsumer(broker.url, pki.ca, pki.consumer.cert, pki.consumer.key, AGENCY,
                             client_id="nudge-publisher").start()
    assert consumer.connected.wait(10)
    with IngestServer(pki.server.cert, pki.server.key, pki.ca) as srv:
        srv.publish_hotlist("stolen", 1, v1)
        rig = SimulatedRig(tmp_path, f"""
[unit]
camera_id = "{pki.device_id}"
site_latitude = 45.0
site_longitude = -122.0

[camera]
backend = "replay"
loop = true
realtime = true

[illuminator]
pin_factory = "mock"

[uplink]
protocol = "mqtt"
endpoint = "{srv.url}"
mqtt_broker = "{broker.url}"
mqtt_agency = "{AGENCY}"
mqtt_site = "rig"
mqtt_nudge_jitter_s = 0.5
ca_file = "{pki.ca}"
cert_file = "{pki.client.cert}"
key_file = "{pki.client.key}"

[hotlists]
agency_public_key = "{pub.decode()}"
names = ["stolen"]
poll_interval_s = 3600.0
""")
        try:
            rig.start()
            rig.wait_ready()

            def version() -> int | None:
                v: int | None = rig.control("status")["hotlists"]["versions"].get("stolen")
                return v

            rig.wait_for(lambda: version() == 1, 30, "the first poll")
            rig.wait_for(lambda: rig.control("status")["mqtt"]["connected"], 30, "the broker")
            time.sleep(0.5)  # the SUBSCRIBE follows the CONNACK
            # A validly signed v3 as the payload: a nudge carries no content, so it is not used.
            v3 = sign_hotlist(agency, "stolen", 3, [HotlistEntry("ZZZ999", "from a nudge", 9)])
            consumer.client.publish(f"vigil/{AGENCY}/notify/hotlists", v3, qos=1)
            rig.wait_for(lambda: rig.control("status")["mqtt"]["nudges"] >= 1, 10, "the nudge")
            time.sleep(2.0)
            assert version() == 1  # the server still has v1: nothing was taken from MQTT
            srv.publish_hotlist("stolen", 2, sign_hotlist(
                agency, "stolen", 2, [HotlistEntry("ABC123", "stolen vehicle", 9),
                                      HotlistEntry("XYZ789", "wanted", 8)]))
            t0 = time.monotonic()
            consumer.client.publish(f"vigil/{AGENCY}/notify/hotlists", b"", qos=1)
            rig.wait_for(lambda: version() == 2, 15, "the nudged poll")
            took = time.monotonic() - t0
            rc, _ = rig.stop()
        finally:
            rig.close()
            consumer.close(end_session=True)
    assert rc == 0
    assert took < 10  # the hourly poll was not waited for
