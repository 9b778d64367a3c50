"""PlateEngine end to end on committed held-out frames with the committed int8 models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from inference.engine import PlateEngine
from inference.errors import FrameError, ModelError
from inference.records import Box

DATA = Path(__file__).resolve().parent / "data" / "detector"
FRAMES = json.loads((DATA / "frames.json").read_text())


def _rgb(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(DATA / name)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def engine() -> Iterator[PlateEngine]:
    with PlateEngine.load() as e:
        yield e


@pytest.mark.parametrize(
    "name", ["romanian-lp-robertlucian-00077.jpg", "romanian-lp-robertlucian-00425.jpg"]
)
def test_observe_finds_and_reads_every_plate(engine: PlateEngine, name: str) -> None:
    result = engine.observe(_rgb(name), frame_time_s=12.5)
    assert result.frame_time_s == 12.5
    for x, y, w, h in FRAMES[name]["plates"]:
        truth = Box(x, y, w, h)
        obs = max(result.plates, key=lambda o: o.detection.box.iou(truth))
        assert obs.detection.box.iou(truth) >= 0.5
        assert obs.detection.label == "plate"
        assert obs.crop.dtype == np.uint8 and obs.crop.ndim == 3 and obs.crop.shape[2] == 3
        assert obs.crop.shape[1] >= 0.8 * w  # the crop is the plate at its own resolution
        assert obs.ocr.text and 0.0 <= obs.ocr.confidence <= 1.0
        assert obs.ocr.candidates
        # A partial read shows "?" where its best candidate spells a character out.
        assert len(obs.ocr.candidates[0].text) == len(obs.ocr.text)


def test_read_crop_matches_the_plate_read_in_the_frame(engine: PlateEngine) -> None:
    name = "romanian-lp-robertlucian-00088.jpg"
    result = engine.observe(_rgb(name))
    obs = max(result.plates, key=lambda o: o.detection.score)
    again = engine.read_crop(obs.crop)
    assert again.text == obs.ocr.text


def test_vehicles_are_detections_with_the_vehicle_label(engine: PlateEngine) -> None:
    result = engine.observe(_rgb("romanian-lp-robertlucian-00353.jpg"))
    assert all(v.label == "vehicle" for v in result.vehicles)
    assert all(p.detection.label == "plate" for p in result.plates)


@pytest.mark.parametrize(
    "frame",
    [np.zeros((0, 0, 3), np.uint8), np.zeros((720, 1280), np.float64), "frame", None,
     np.zeros((720, 1280, 5), np.uint8)],
)
def test_bad_frames_raise_frame_error(engine: PlateEngine, frame: object) -> None:
    with pytest.raises(FrameError):
        engine.observe(frame)  # type: ignore[arg-type]


def test_grey_frame_is_accepted(engine: PlateEngine) -> None:
    grey = cv2.cvtColor(_rgb("romanian-lp-robertlucian-00088.jpg"), cv2.COLOR_RGB2GRAY)
    result = engine.observe(grey)
    assert result.plates and result.plates[0].crop.shape[2] == 3


def test_missing_models_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        PlateEngine.load(tmp_path)


def test_bad_country_refused() -> None:
    with pytest.raises(ValueError):
        PlateEngine.load(country="xx")


def test_detections_the_reader_cannot_read_are_not_plates() -> None:
    from inference.detector import PlateDetector
    from inference.engine import DEFAULT_MODEL_DIR, EngineSettings, legible_chars
    from inference.records import OcrResult

    class OneLegibleReader:
        """Reads the first crop it is given as a plate, every later one as "B??"."""

        def __init__(self) -> None:
            self.calls = 0

        def read(self, crop: np.ndarray) -> OcrResult:
            self.calls += 1
            text = "B123CD" if self.calls == 1 else "B??"
            confs = (0.9,) * 6 if self.calls == 1 else (0.9, 0.4, 0.4)
            return OcrResult(text=text, confidence=0.5, char_confidences=confs,
                             candidates=(), region=None, region_confidence=0.0,
                             plate_class="full")

        def close(self) -> None:
            pass

    confs = OcrResult("B?2", 0.1, (0.9, 0.2, 0.5), ())
    assert legible_chars(confs) == 2
    with pytest.raises(ValueError):
        EngineSettings(min_legible_chars=5)
    frame = _rgb("romanian-lp-robertlucian-00077.jpg")
    with PlateDetector.load(DEFAULT_MODEL_DIR) as det:
        found = [d for d in det.detect(frame) if d.label == "plate"]
        assert len(found) >= 2  # the frame has two labelled plates
        kept = PlateEngine(det, OneLegibleReader(), EngineSettings()).observe(frame).plates
        every = PlateEngine(det, OneLegibleReader(), EngineSettings(min_legible_chars=0)).observe(
            frame
        ).plates
    assert [o.ocr.text for o in kept] == ["B123CD"]
    assert len(every) == len(found)


def test_a_photo_that_is_all_plate_is_found_by_zooming_out() -> None:
    from inference.detector import DetectorSettings, PlateDetector
    from inference.engine import DEFAULT_MODEL_DIR

    ocr_data = Path(__file__).resolve().parent / "data" / "ocr"
    crop = cv2.cvtColor(cv2.imread(str(ocr_data / "ct704.jpg")), cv2.COLOR_BGR2RGB)
    h, w = crop.shape[:2]
    with PlateDetector.load(DEFAULT_MODEL_DIR, settings=DetectorSettings(zoom_out=0)) as plain:
        assert not [d for d in plain.detect(crop) if d.label == "plate"]
    with PlateDetector.load(DEFAULT_MODEL_DIR) as zooming:
        plates = [d for d in zooming.detect(crop) if d.label == "plate"]
    assert plates and plates[0].box.iou(Box(0, 0, w, h)) >= 0.7
    with pytest.raises(ValueError):
        DetectorSettings(zoom_out=1.0)


def test_a_close_up_framed_squarer_than_its_plate_is_found_whole_beside_its_details(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``close_up_width``: the zoom-out pass runs although the whole-frame pass found something
    (a sticker), and only its plates that wide are added."""
    from inference.detector import DetectorSettings, PlateDetector
    from inference.engine import DEFAULT_MODEL_DIR
    from inference.records import Detection

    sticker = Detection(Box(270, 10, 40, 25), 0.9, "plate")
    plate = Detection(Box(0, 40, 320, 160), 0.7, "plate")
    small = Detection(Box(100, 100, 60, 20), 0.6, "plate")
    frame = np.full((240, 320, 3), 128, np.uint8)
    settings = DetectorSettings(refine_plate_px=0)
    for width, expected in ((0.0, [sticker]), (0.4, [plate, sticker])):
        with PlateDetector.load(
            DEFAULT_MODEL_DIR, settings=replace(settings, close_up_width=width)
        ) as det:
            monkeypatch.setattr(det, "decode", lambda out, lb: [sticker])
            monkeypatch.setattr(det, "zoomed_out", lambda frame, factor: [plate, small])
            assert det.detect(frame) == expected
    # a plate the whole-frame pass found already (a small photo sees it in range) is not doubled;
    # half the registration boxed by the whole-frame pass does not stand for the plate
    seen = Detection(Box(4, 44, 310, 150), 0.8, "plate")
    half = Detection(Box(80, 60, 160, 110), 0.8, "plate")
    for whole_pass, expected in (([seen], [seen]), ([half], [plate, half])):
        with PlateDetector.load(
            DEFAULT_MODEL_DIR, settings=replace(settings, close_up_width=0.4)
        ) as det:
            monkeypatch.setattr(det, "decode", lambda out, lb, found=whole_pass: found)
            monkeypatch.setattr(det, "zoomed_out", lambda frame, factor: [plate])
            assert det.detect(frame) == expected
    # the close-up's plate is not re-measured by the second pass (which would box its state name)
    refined: list[Box] = []

    def refine(frame: np.ndarray, d: Detection) -> Detection:
        refined.append(d.box)
        return d

    close_ups = DetectorSettings(close_up_width=0.4)
    with PlateDetector.load(DEFAULT_MODEL_DIR, settings=close_ups) as det:
        monkeypatch.setattr(det, "decode", lambda out, lb: [sticker])
        monkeypatch.setattr(det, "zoomed_out", lambda frame, factor: [plate])
        monkeypatch.setattr(det, "refine", refine)
        assert det.detect(frame) == [plate, sticker]
    assert refined == [sticker.box]
    with pytest.raises(ValueError):
        DetectorSettings(close_up_width=0.1)
    with pytest.raises(ValueError):
        DetectorSettings(close_up_width=0.4, zoom_out=0)


def test_a_reading_zone_finds_in_a_4k_frame_what_the_720p_frame_shows(
    engine: PlateEngine,
) -> None:
    """The frame laid into a 3840x2160 one: read through a zone round it, its plates are found
    in the big frame's pixels and read as in the 720p frame itself."""
    from inference.zone import Zone, ZonedEngine

    name = "romanian-lp-robertlucian-00077.jpg"
    small = _rgb(name)
    big = np.zeros((2160, 3840, 3), np.uint8)
    big[720:1440, 1280:2560] = small
    alone = engine.observe(small).plates
    zoned = ZonedEngine(engine, Zone(1280, 720, 1280, 720)).observe(big).plates
    for x, y, w, h in FRAMES[name]["plates"]:
        truth = Box(x + 1280, y + 720, w, h)
        obs = max(zoned, key=lambda o: o.detection.box.iou(truth))
        assert obs.detection.box.iou(truth) >= 0.5
    assert sorted(o.ocr.text for o in zoned) == sorted(o.ocr.text for o in alone)


def test_the_daemon_takes_a_plates_second_look_in_the_window_model_still_photos_do_not(
    engine: PlateEngine,
) -> None:
    """The window model's second look costs a quarter and boxes a few plates worse: the daemon
    (votes over frames) takes it, `vigil read` / `vigil eval` (one photo) do not."""
    assert engine.detector.settings.window_refine and engine.detector.window_hw == (192, 320)
    with PlateEngine.load(text_fallback=True, photos=True) as still:
        assert not still.detector.settings.window_refine
        name = "romanian-lp-robertlucian-00077.jpg"
        daemon_reads = {o.ocr.text for o in engine.observe(_rgb(name)).plates}
        still_reads = {o.ocr.text for o in still.observe(_rgb(name)).plates}
        assert daemon_reads and daemon_reads <= still_reads


def test_a_plate_seen_beyond_the_trained_sizes_takes_its_second_look_shrunk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``max_trained_px``: a plate the whole-frame pass saw wider than that many input pixels
    (there its box is shifted, cut short or swollen) is boxed again in the frame shrunk until it
    spans ``refine_plate_px``; the nearest plate of that pass replaces it, keeping its score."""
    from inference.detector import DetectorSettings, PlateDetector
    from inference.engine import DEFAULT_MODEL_DIR
    from inference.records import Detection

    frame = np.full((120, 160, 3), 128, np.uint8)  # letterboxed 3.2 x into 384 x 640
    swollen = Detection(Box(40, 40, 100, 60), 0.8, "plate")  # 320 input pixels wide
    small = Detection(Box(10, 10, 30, 10), 0.7, "plate")  # 96: in range
    tight = Detection(Box(30, 50, 96, 30), 0.5, "plate")
    far = Detection(Box(0, 0, 20, 10), 0.9, "plate")
    factors: list[float] = []

    def zoomed(frame: np.ndarray, factor: float) -> list[Detection]:
        factors.append(factor)
        return [far, tight]

    for limit, expected in ((0.0, [swollen, small]), (200.0, [replace(tight, score=0.8), small])):
        factors.clear()
        with PlateDetector.load(
            DEFAULT_MODEL_DIR, settings=DetectorSettings(max_trained_px=limit)
        ) as det:
            monkeypatch.setattr(det, "decode", lambda out, lb: [swollen, small])
            monkeypatch.setattr(det, "zoomed_out", zoomed)
            assert det.detect(frame) == expected
        assert factors == ([] if not limit else [pytest.approx(320 / 120)])
    # nothing of the shrunk pass near the plate: the first box stays
    with PlateDetector.load(DEFAULT_MODEL_DIR) as det:
        monkeypatch.setattr(det, "decode", lambda out, lb: [swollen])
        monkeypatch.setattr(det, "zoomed_out", lambda frame, factor: [far])
        assert det.detect(frame) == [swollen]
    for bad in (50.0, 700.0):
        with pytest.raises(ValueError):
            DetectorSettings(max_trained_px=bad)


def test_a_window_leaves_plates_wider_than_the_trained_sizes_to_the_whole_frame_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A window of the tile pass sees a large plate beyond ``max_trained_px`` and boxes its
    county name or a row of it; the whole-frame pass sees the same plate in range."""
    from inference.detector import DetectorSettings, PlateDetector
    from inference.engine import DEFAULT_MODEL_DIR
    from inference.records import Detection

    frame = np.zeros((720, 1280, 3), np.uint8)  # at scale 0.5 one window holds it all
    county = Detection(Box(100, 100, 420, 60), 0.9, "plate")  # 210 input pixels
    plate = Detection(Box(600, 300, 380, 120), 0.8, "plate")  # 190: kept
    for limit, expected in ((200.0, [plate]), (0.0, [county, plate])):
        with PlateDetector.load(
            DEFAULT_MODEL_DIR, settings=DetectorSettings(max_trained_px=limit)
        ) as det:
            monkeypatch.setattr(det, "decode", lambda out, lb: [county, plate])
            found, windows = det.tiled(frame, 0.5)
        assert (found, windows) == (expected, 1)
