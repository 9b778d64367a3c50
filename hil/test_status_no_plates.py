"""`vigil status` is no plate feed: the control socket answers without a role, a reason or an
audit entry, so its replies carry no plate, read id or time of a read (issue: five polls of
the socket used to return five plates)."""

from __future__ import annotations

import json

import pytest

from hil.rig import SimulatedRig, running

pytestmark = pytest.mark.hil

CONFIG = """
[unit]
camera_id = "hil-status"
site_latitude = 45.0
site_longitude = -122.0

[camera]
backend = "replay"
loop = true
realtime = true
fps = 10.0

[illuminator]
pin_factory = "mock"

[logging]
reads_stdout = true
"""


def test_five_status_polls_carry_no_plate_read_id_or_read_time(tmp_path):
    rig = SimulatedRig(tmp_path, CONFIG)
    try:
        rig.start()
        rig.wait_ready()
        rig.wait_for(lambda: len(rig.reads) >= 2, 60, "two reads on stdout")
        replies = []
        for _ in range(5):
            status = rig.control("status")
            assert running(status)
            replies.append(json.dumps(status))
        printed = list(rig.reads)
        assert printed and all(r["plate"] for r in printed)
        for text in replies:
            for r in printed:
                assert r["plate"] not in text, "a plate on the control socket"
                assert r["read_id"] not in text, "a read id on the control socket"
                assert r["time"] not in text, "a read's time on the control socket"
        last = json.loads(replies[-1])["last_read"]
        assert set(last) == {"confidence"}
    finally:
        rig.close()
