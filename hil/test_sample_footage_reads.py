"""Replayed footage of several passing vehicles gives exactly one read per vehicle, right text.

Runs the real daemon (real models, tracker, vote, store) over the bundled sample footage once,
as fast as it can read it, and compares the reads with the footage's ground truth.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hil.rig import REPO, SimulatedRig

pytestmark = pytest.mark.hil

MANIFEST = REPO / "firmware" / "sample" / "footage.json"


def test_one_read_per_vehicle_with_the_right_text(tmp_path: Path) -> None:
    truth = json.loads(MANIFEST.read_text())
    expected = [v["text"] for v in truth["vehicles"] if v.get("expected_reads", 1) == 1]
    rig = SimulatedRig(tmp_path, """
[unit]
camera_id = "hil-footage"
site_latitude = 45.0
site_longitude = -122.0

[camera]
backend = "replay"
loop = false
realtime = false

[illuminator]
pin_factory = "mock"

[logging]
reads_stdout = true
""")
    try:
        rig.start()
        rig.wait_ready()
        rig.wait_for(lambda: rig.log_events("replay finished"), 120, "end of the replay")
        rc, _ = rig.stop()
    finally:
        rig.close()
    assert rc == 0
    texts = [r["plate"] for r in rig.reads]
    # Exactly one read per vehicle: no vehicle missed, none read twice, nothing invented.
    assert sorted(texts) == sorted(expected), f"reads {texts} != truth {expected}"
