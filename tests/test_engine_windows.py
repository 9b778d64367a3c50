"""Still photos: plates only the native windows find are kept on a plate-like read."""

from __future__ import annotations

import numpy as np

from inference.detector import DetectorSettings
from inference.engine import EngineSettings, PlateEngine
from inference.records import Box, Candidate, Detection, OcrResult

FOUND = Detection(Box(100, 100, 100, 25), 0.9, "plate")
AGAIN = Detection(Box(104, 101, 96, 24), 0.8, "plate")  # FOUND again, boxed by a window
BRIGHT = Detection(Box(800, 500, 100, 25), 0.7, "plate")  # a plate only a window sees
DARK = Detection(Box(400, 300, 100, 25), 0.7, "plate")  # a sign only a window sees
FAINT = Detection(Box(900, 100, 100, 25), 0.4, "plate")  # scored too low to be read


class FakeDetector:
    input_hw = (384, 640)

    def __init__(self, tile_scale: float = 0.0) -> None:
        self.settings = DetectorSettings(tile_scale=tile_scale)
        self.tiled_calls = 0

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return [FOUND]

    def tiled(self, frame: np.ndarray, scale: float) -> tuple[list[Detection], int]:
        self.tiled_calls += 1
        return [AGAIN, BRIGHT, DARK, FAINT], 4

    def refine(self, frame: np.ndarray, det: Detection) -> Detection:
        return det

    def close(self) -> None:
        pass


class BrightnessReader:
    """A registration on bright crops, a word on dark ones; both read surely."""


    def read(self, crop: np.ndarray) -> OcrResult:
        text = "B12CDE" if crop.mean() > 100 else "STOP"
        return OcrResult(text, 0.99, (0.99,) * len(text), (Candidate(text, 0.99),))

    def close(self) -> None:
        pass


def _frame(h: int = 720, w: int = 1280) -> np.ndarray:
    frame = np.zeros((h, w, 3), np.uint8)
    for d in (FOUND, BRIGHT, FAINT):
        b = d.box
        frame[int(b.y) : int(b.y + b.h), int(b.x) : int(b.x + b.w)] = 255
    return frame


def _engine(detector: FakeDetector, windows: bool = True) -> PlateEngine:
    return PlateEngine(
        detector,  # type: ignore[arg-type]
        BrightnessReader(),  # type: ignore[arg-type]
        EngineSettings(native_windows=windows),
        beside_detector=detector,  # type: ignore[arg-type]
    )


def test_a_plate_only_a_window_found_is_kept_on_a_plate_like_read() -> None:
    with _engine(FakeDetector()) as engine:
        plates = engine.observe(_frame()).plates
    boxes = [p.detection.box for p in plates]
    # FOUND once; the sign (no digit) dropped; the faint one never read
    assert boxes == [FOUND.box, BRIGHT.box]
    assert [p.ocr.text for p in plates] == ["B12CDE", "B12CDE"]


def test_windows_off_or_pointless_look_at_nothing_more() -> None:
    det = FakeDetector()
    with _engine(det, windows=False) as engine:
        assert [p.detection.box for p in engine.observe(_frame()).plates] == [FOUND.box]
    small = FakeDetector()  # a frame the whole-frame pass sees at native pixels already
    with _engine(small) as engine:
        engine.observe(_frame(384, 640))
    tiled = FakeDetector(tile_scale=0.5)  # a 4K frame: the detector's own windows see it
    with _engine(tiled) as engine:
        engine.observe(_frame(2160, 3840))
    assert det.tiled_calls == small.tiled_calls == tiled.tiled_calls == 0
