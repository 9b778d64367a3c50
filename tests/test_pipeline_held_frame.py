"""The frame a track keeps until its pass ends: the same overview, nothing above the cut line,
and memory only for the rows it keeps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from firmware.pipeline.held_frame import held_frame, overview_rows
from inference.privacy import cut_line_y, overview_crop
from inference.records import Box

ROOT = Path(__file__).resolve().parents[1]


def _frame(seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 256, (720, 1280, 3), dtype=np.uint8)


def test_every_overview_of_the_frame_is_cut_from_the_held_copy_unchanged() -> None:
    frame = _frame()
    plates = [Box(560.0, 337.0, 54.0, 28.0), Box(900.0, 520.0, 80.0, 40.0), Box(10.0, 2.0, 60, 30)]
    vehicles = [Box(450.0, 250.0, 300.0, 260.0), Box(0.0, 0.0, 1280.0, 720.0),
                Box(850.0, 400.0, 200.0, 200.0), Box(0.0, 600.0, 100.0, 100.0)]
    held = held_frame(frame, plates, vehicles)
    assert held is not None and held.shape == frame.shape and held.dtype == frame.dtype
    for plate in plates:
        # No vehicle, or any vehicle box the tracker could give the plate (one that holds its
        # centre): the same pixels.
        for vehicle in [None, *[v for v in vehicles if v.x <= plate.cx <= v.x + v.w
                                and v.y <= plate.cy <= v.y + v.h]]:
            assert np.array_equal(overview_crop(held, vehicle, plate),
                                  overview_crop(frame, vehicle, plate))


def test_rows_below_every_overview_are_not_held() -> None:
    frame = _frame()
    plate = Box(560.0, 337.0, 54.0, 28.0)
    held = held_frame(frame, [plate], [Box(450.0, 250.0, 300.0, 200.0)])
    assert held is not None
    assert overview_rows(plate, [Box(450.0, 250.0, 300.0, 200.0)], 720) == (309, 450)
    assert np.array_equal(held[309:450], frame[309:450])
    assert not held[450:].any() and not held[:309].any()
    # Without a vehicle around it: the band of two plate heights below the plate.
    assert overview_rows(plate, [], 720) == (309, 421)


def test_nothing_above_the_highest_cut_line_is_held() -> None:
    frame = _frame()
    plates = [Box(560.0, 337.0, 54.0, 28.0), Box(900.0, 520.0, 80.0, 40.0)]
    held = held_frame(frame, plates, [Box(0.0, 0.0, 1280.0, 720.0)])
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
from firmware.pipeline.held_frame import held_frame, overview_rows
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


def _whole(i: int) -> np.ndarray:
    return np.random.default_rng(100 + i).integers(1, 256, (720, 1280, 3), dtype=np.uint8)


def test_the_pipeline_cuts_each_overview_as_from_the_whole_frame(tmp_path: Path) -> None:
    """The real tracker and vote pick the best moment and its vehicle box; the overview the
    pipeline is asked to cut from the held copy is the one the whole frame would give. Vehicles
    around the plate, beside it, nested, and a second one that holds its centre."""
    from drivers.camera import CameraTimeout
    from drivers.clock import FakeClock
    from firmware import config
    from firmware.app.health import Counters, Heartbeat
    from firmware.app.wiring import PassVoter
    from firmware.pipeline.frame_loop import LocationFix, Pipeline, PipelineParts
    from inference.records import Candidate, Detection, FrameResult, OcrResult, PlateObservation
    from inference.tracker import Tracker
    from tests.kit import open_store
    from tests.kit.threads import run_until

    n = 40  # plates in the first 20 frames; the pass ends after max_gap_s (1 s) without one

    class Camera:
        i = 0

        def start(self) -> None: ...

        def read(self, timeout_s: float) -> object:
            if self.i >= n:
                raise CameraTimeout("end of script")
            from types import SimpleNamespace

            f = SimpleNamespace(image=_whole(self.i), index=self.i, monotonic_s=self.i / 10)
            self.i += 1
            return f

    class Engine:
        def observe(self, image: np.ndarray, t: float) -> FrameResult:
            i = int(round(t * 10))
            if i >= 20:
                return FrameResult(t, ())
            conf = 0.6 + 0.3 * ((i * 7) % 11) / 10  # the best moment is in the middle
            ocr = OcrResult("ABC1234", conf, (conf,) * 7, (Candidate("ABC1234", conf),))
            plate = Box(500.0 + 8 * i, 300.0 + 6 * i, 60.0 + i, 30.0 + i / 2)
            vehicles = (
                Detection(Box(plate.x - 150, plate.y - 120, 360, 200 + 4 * i), 0.9, "vehicle"),
                Detection(Box(plate.x - 60, plate.y - 40, 200, 180), 0.8, "vehicle"),
                Detection(Box(100.0, 600.0 - i, 200, 110), 0.8, "vehicle"),
            )
            obs = PlateObservation(Detection(plate, 0.9), ocr, np.full((32, 64, 3), 9, np.uint8))
            return FrameResult(t, (obs,), vehicles)

    asked: list[tuple[np.ndarray, Box | None, Box, np.ndarray]] = []

    def overview(frame: np.ndarray | None, vehicle: Box | None, plate: Box) -> None:
        assert frame is not None
        asked.append((frame, vehicle, plate, overview_crop(frame, vehicle, plate)))

    settings = config.simulation_defaults()
    store = open_store(tmp_path / "v.db", clock=FakeClock(), settings=settings.store)
    parts = PipelineParts(
        camera=Camera(), engine=Engine(), make_tracker=lambda: Tracker(settings.tracker),
        make_voter=lambda: PassVoter(settings.tracker), store=store, clock=FakeClock(),
        camera_id="t-1", location=lambda: LocationFix(1.0, 2.0, "site"),
        clock_synced=lambda: True, matcher=lambda: None, overview=overview,
        emit=lambda line: None)
    p = Pipeline(parts, settings, Heartbeat(FakeClock()), Counters())
    run_until(p.run, lambda: bool(asked), timeout_s=20, join_s=10)
    store.close()
    assert len(asked) == 1
    held, vehicle, plate, cut = asked[0]
    assert vehicle is not None
    best = next(i for i in range(20) if np.array_equal(held[int(plate.y):int(plate.y) + 5],
                                                       _whole(i)[int(plate.y):int(plate.y) + 5]))
    assert np.array_equal(cut, overview_crop(_whole(best), vehicle, plate))
    assert not held[:cut_line_y(plate)].any()  # nothing above the cut line was kept
