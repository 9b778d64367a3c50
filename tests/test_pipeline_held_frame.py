"""The frame a track keeps until its pass ends: the same overview, nothing above the cut line,
and memory only for the rows it keeps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from firmware.pipeline.held_frame import held_frame
from inference.privacy import cut_line_y, overview_crop
from inference.records import Box

ROOT = Path(__file__).resolve().parents[1]


def _frame(seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 256, (720, 1280, 3), dtype=np.uint8)


def test_every_overview_of_the_frame_is_cut_from_the_held_copy_unchanged() -> None:
    frame = _frame()
    plates = [Box(560.0, 337.0, 54.0, 28.0), Box(900.0, 520.0, 80.0, 40.0), Box(10.0, 2.0, 60, 30)]
    held = held_frame(frame, plates)
    assert held is not None and held.shape == frame.shape and held.dtype == frame.dtype
    vehicles = [None, Box(450.0, 250.0, 300.0, 260.0), Box(0.0, 0.0, 1280.0, 720.0)]
    for plate in plates:
        for vehicle in vehicles:
            assert np.array_equal(overview_crop(held, vehicle, plate),
                                  overview_crop(frame, vehicle, plate))


def test_nothing_above_the_highest_cut_line_is_held() -> None:
    frame = _frame()
    plates = [Box(560.0, 337.0, 54.0, 28.0), Box(900.0, 520.0, 80.0, 40.0)]
    held = held_frame(frame, plates)
    assert held is not None
    top = cut_line_y(plates[0])  # the higher plate's line
    assert top == 309
    assert not held[:top].any()
    assert np.array_equal(held[top:], frame[top:])


def test_a_frame_without_plates_is_not_held() -> None:
    assert held_frame(_frame(), []) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")
def test_the_rows_not_kept_cost_no_memory() -> None:
    # In a fresh process with the daemon's malloc settings: 40 held copies of frames whose
    # plate is low in the picture (120 rows kept of 720) add about a sixth of 40 frames.
    code = """
import json, numpy as np
from firmware.app import malloc_tuning
from firmware.pipeline.held_frame import held_frame
from inference.records import Box
def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
malloc_tuning.tune()
frame = np.full((720, 1280, 3), 7, np.uint8)
before = rss_kb()
kept = [held_frame(frame, [Box(600.0, 630.0, 60.0, 30.0)]) for _ in range(40)]
print(json.dumps({"grew_kb": rss_kb() - before, "frame_kb": frame.nbytes // 1024}))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=True)
    r = json.loads(out.stdout)
    whole = 40 * r["frame_kb"]
    assert r["grew_kb"] < whole * 0.3, r  # 120/720 of each frame, plus page rounding
