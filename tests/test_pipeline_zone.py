"""The reading zone: what the engine is given of a frame, and where what it found goes back."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from firmware import config
from firmware.app.health import Counters
from firmware.pipeline.frame_loop import Pipeline
from inference.errors import FrameError
from inference.records import Box, Candidate, Detection, FrameResult, OcrResult, PlateObservation
from inference.tracker import Tracker
from inference.zone import Zone, in_frame
from tests.kit.people import INVESTIGATOR
from tests.kit.threads import run_until
from tests.test_firmware_pipeline import _Frame, _pipeline


def _plate(x: float, y: float) -> PlateObservation:
    ocr = OcrResult("KX52ABC", 0.95, (0.95,) * 7, (Candidate("KX52ABC", 0.95),))
    corners = ((x, y), (x + 80, y), (x + 80, y + 20), (x, y + 20))
    return PlateObservation(
        Detection(Box(x, y, 80, 20), 0.9, "plate", corners), ocr, np.zeros((20, 80, 3), np.uint8)
    )


def test_the_zone_is_a_view_of_the_frame_and_knows_where_it_starts() -> None:
    frame = np.zeros((2160, 3840, 3), np.uint8)
    seen, dx, dy = Zone(1000, 900, 1280, 720).cut(frame)
    assert seen.shape == (720, 1280, 3) and (dx, dy) == (1000, 900)
    assert np.shares_memory(seen, frame)


def test_a_zone_past_the_frame_is_cut_at_its_edge_and_one_outside_it_is_refused() -> None:
    frame = np.zeros((720, 1280, 3), np.uint8)
    seen, dx, dy = Zone(1000, 600, 1280, 720).cut(frame)
    assert seen.shape == (120, 280, 3) and (dx, dy) == (1000, 600)
    with pytest.raises(FrameError, match="outside the 1280x720 frame"):
        Zone(1300, 0, 640, 480).cut(frame)


def test_what_was_found_in_the_zone_goes_back_into_frame_pixels() -> None:
    vehicle = Detection(Box(10, 5, 300, 200), 0.8, "vehicle")
    result = FrameResult(1.5, (_plate(100, 50),), (vehicle,))
    moved = in_frame(result, 1000, 900)
    [p] = moved.plates
    assert p.detection.box == Box(1100, 950, 80, 20)
    assert p.detection.corners is not None and p.detection.corners[0] == (1100, 950)
    assert moved.vehicles[0].box == Box(1010, 905, 300, 200)
    assert p.ocr == result.plates[0].ocr and moved.frame_time_s == 1.5
    assert in_frame(result, 0, 0) is result


class _ZoneEngine:
    """Sees a plate at the same place of whatever it is given; records what it was given."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def observe(self, image: np.ndarray, t: float) -> FrameResult:
        self.shapes.append(image.shape)
        return FrameResult(t, (_plate(100 + 10 * round(t * 10), 50),))


class _BigCamera:
    def __init__(self, n: int) -> None:
        self.n, self.i = n, 0

    def start(self) -> None:
        pass

    def read(self, timeout_s: float) -> _Frame:
        from drivers.camera import CameraTimeout

        if self.i >= self.n:
            raise CameraTimeout("end of script")
        image = np.random.default_rng(self.i).integers(0, 255, (2160, 3840, 3), np.uint8)
        self.i += 1
        return _Frame(image, self.i - 1, (self.i - 1) / 10)


def test_the_pipeline_reads_only_the_zone_and_stores_frame_pixels(store) -> None:
    emitted: list = []
    p = _pipeline(store, {}, 0, emitted)
    engine = _ZoneEngine()
    settings = config.simulation_defaults()
    inf = dataclasses.replace(settings.inference, zone_x=1000, zone_y=900, zone_width=1280,
                              zone_height=720)
    settings = dataclasses.replace(settings, inference=inf)
    parts = dataclasses.replace(p.p, camera=_BigCamera(6), engine=engine,
                                make_tracker=lambda: Tracker(settings.tracker))
    p = Pipeline(parts, settings, p.heartbeat, Counters())
    run_until(p.run, lambda: False, timeout_s=0.5)
    assert engine.shapes and set(engine.shapes) == {(720, 1280, 3)}
    [read] = emitted
    [stored] = store.get_reads([read["read_id"]], INVESTIGATOR)
    x0, y0, x1, y1 = stored.box  # in the camera frame's pixels, not the zone's
    assert stored.plate_text == "KX52ABC"
    assert 1100 <= x0 <= 1160 and y0 == 950 and (x1 - x0, y1 - y0) == (80, 20)


def test_a_zone_is_spelled_x_y_width_height_and_holds_whole_boxes_only() -> None:
    z = Zone.parse("1280,720,1280,720")
    assert z == Zone(1280, 720, 1280, 720)
    assert z.holds(Box(1300, 800, 80, 20)) and not z.holds(Box(1250, 800, 80, 20))
    for bad in ("1,2,3", "a,b,c,d", "-1,0,100,100", "0,0,1,100"):
        with pytest.raises(ValueError, match="zone must"):
            Zone.parse(bad)


def test_eval_scores_only_the_plates_inside_the_zone() -> None:
    from inference.eval_cli import in_zone
    from inference.evaluation import LabelledImage, LabelledPlate
    from inference.zone import ZonedEngine

    img = LabelledImage("a.jpg", (LabelledPlate(Box(1300, 800, 80, 20), "KX52ABC", "eu"),
                                  LabelledPlate(Box(10, 10, 80, 20), "AB12CDE", "eu")))
    assert [p.text for p in in_zone(img, Zone(1280, 720, 1280, 720)).plates] == ["KX52ABC"]
    engine = _ZoneEngine()
    zoned = ZonedEngine(engine, Zone(1280, 720, 1280, 720))
    [p] = zoned.observe(np.zeros((2160, 3840, 3), np.uint8), 0.0).plates
    assert engine.shapes == [(720, 1280, 3)] and p.detection.box.x == 1380


def test_a_zone_outside_the_footage_is_logged_once_per_hundred_frames(store, caplog) -> None:
    import logging

    emitted: list = []
    p = _pipeline(store, {}, 150, emitted)  # 128x72 frames
    settings = config.simulation_defaults()
    inf = dataclasses.replace(settings.inference, zone_x=1000, zone_y=900, zone_width=640,
                              zone_height=480)
    p = Pipeline(p.p, dataclasses.replace(settings, inference=inf), p.heartbeat, Counters())
    with caplog.at_level(logging.WARNING, logger="firmware.pipeline.frame_loop"):
        run_until(p.run, lambda: p.counters.get("frames") >= 150, timeout_s=10)
    assert p.counters.get("frames_rejected") == 150
    logged = [r for r in caplog.records if r.getMessage() == "frame rejected"]
    assert [r.same_error_before for r in logged] == [0, 100]  # type: ignore[attr-defined]
    assert "outside the 128x72 frame" in logged[0].error  # type: ignore[attr-defined]
