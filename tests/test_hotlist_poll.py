"""Hotlist polling over mTLS from the reference ingest service."""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drivers.clock import FakeClock
from firmware.link.hotlists import HotlistSettings, HotlistUpdater, sign_hotlist
from firmware.uplink.settings import UplinkSettings
from firmware.uplink.transport import HttpsTransport
from hil.certs import TestPki
from hil.ingest_server import Fault, IngestServer
from inference.hotlist_matcher import HotlistEntry

AGENCY = Ed25519PrivateKey.generate()
PUB_B64 = base64.b64encode(
    AGENCY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
).decode()


def test_poll_full_delta_current_and_refusals(pki: TestPki, tmp_path: Path) -> None:
    clock = FakeClock()
    with IngestServer(pki.server.cert, pki.server.key, pki.ca) as srv:
        us = UplinkSettings(endpoint=srv.url, ca_file=str(pki.ca), cert_file=str(pki.client.cert),
                            key_file=str(pki.client.key), device_id=pki.device_id, timeout_s=2)
        transport = HttpsTransport(us, clock)
        hs = HotlistSettings(path=str(tmp_path), agency_public_key=PUB_B64,
                             names=("stolen", "amber"), poll_interval_s=60)
        published = []
        audit: list[tuple[object, ...]] = []
        up = HotlistUpdater(hs, transport, bytes(range(32)), clock, published.append,
                            lambda *a: audit.append(a))
        assert up.step() == 60 and not published  # nothing published yet: 404s
        srv.publish_hotlist("stolen", 1, sign_hotlist(AGENCY, "stolen", 1,
                                                      [HotlistEntry("AB123CD", "stolen", 1)]))
        up.step()
        assert up.versions() == {"stolen": 1} and published[-1].versions == {"stolen": 1}
        n = len(published)
        up.step()  # 204: nothing new, no rebuild
        assert len(published) == n
        srv.publish_hotlist(
            "stolen", 2,
            sign_hotlist(AGENCY, "stolen", 2, [HotlistEntry("ZZ1", "x", 3)], kind="delta",
                         base_version=1),
            base_version=1,
        )
        up.step()
        assert up.versions() == {"stolen": 2}
        assert srv.state.requests["/v1/hotlists/stolen"] == 4
        # a forged list (another key) and an older one are refused and audited
        srv.publish_hotlist("stolen", 3, sign_hotlist(Ed25519PrivateKey.generate(), "stolen", 3,
                                                      []))
        up.step()
        assert up.versions() == {"stolen": 2}
        assert audit[-1][2] == "refused" and "signature" in str(audit[-1][1])
        # a server failure leaves the held list in place
        srv.set_fault(Fault(mode="status", status=500, paths=("/v1/hotlists/stolen",)))
        up.step()
        assert up.versions() == {"stolen": 2} and "500" in up.last_errors["stolen"]
        assert up.status().errors["amber"] == "HTTP 404"
        # pinned: `vigil status`
        assert list(up.status().as_dict()) == ["versions", "entries", "last_poll", "errors",
                                               "freshness", "expires_at", "refused_entries",
                                               "stored_refused"]
        transport.close()
