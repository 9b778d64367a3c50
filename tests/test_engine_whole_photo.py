"""Still photos that are all plate: the photo read whole against what was found in it."""

from __future__ import annotations

import numpy as np

from inference.engine import EngineSettings, PlateEngine
from inference.records import Box, Candidate, Detection, OcrResult

# A 320x160 close-up of a US plate: the detector boxes the renewal sticker in its corner.
STICKER = Detection(Box(270, 10, 40, 25), 0.9, "plate")
REGISTRATION = Detection(Box(20, 40, 280, 90), 0.8, "plate")


class FakeDetector:
    input_hw = (384, 640)

    def __init__(self, *found: Detection) -> None:
        self.found = list(found)

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return list(self.found)

    def close(self) -> None:
        pass


class WidthReader:
    """Reads by the crop's width: the whole photo, the registration, or the sticker's date,
    the sticker most surely of all (as the real reader does)."""

    def __init__(self, whole: float = 0.9, registration: float = 0.95) -> None:
        self.whole, self.registration = whole, registration
        self.widths: list[int] = []

    def read(self, crop: np.ndarray) -> OcrResult:
        w = crop.shape[1]
        self.widths.append(w)
        if w >= 320:
            text, p = "251RGF", self.whole
        elif w >= 200:
            text, p = "251RGF", self.registration
        else:
            text, p = "1207", 0.99
        return OcrResult(text, p, (p,) * len(text), (Candidate(text, p),))

    def close(self) -> None:
        pass


def _observe(
    detector: FakeDetector, reader: WidthReader, height: int = 160
) -> list[tuple[Box, str]]:
    """What the engine reports on a plain photo 320 px wide (160 high: a plate's shape)."""
    engine = PlateEngine(
        detector,  # type: ignore[arg-type]
        reader,  # type: ignore[arg-type]
        EngineSettings(text_fallback=True, two_rows=False),
    )
    with engine:
        plates = engine.observe(np.full((height, 320, 3), 200, np.uint8)).plates
    return [(p.detection.box, p.ocr.text) for p in plates]


def test_a_sticker_read_surely_does_not_outweigh_the_photo_read_as_a_plate() -> None:
    reader = WidthReader()
    assert _observe(FakeDetector(STICKER), reader) == [(Box(0, 0, 320, 160), "251RGF")]
    # the sticker is never even read
    assert all(w >= 320 for w in reader.widths)


def test_a_registration_found_and_read_more_surely_than_the_photo_is_kept_alone() -> None:
    plates = _observe(FakeDetector(STICKER, REGISTRATION), WidthReader(whole=0.9))
    assert [text for _, text in plates] == ["251RGF"]
    assert plates[0][0] != Box(0, 0, 320, 160)  # the registration's own box
    assert all(box.w >= 160 for box, _ in plates)  # the sticker is not a plate


def test_a_photo_that_does_not_read_as_a_plate_keeps_what_was_found() -> None:
    # whole read unsure: not a plate by itself, so the sticker is still looked at and reported
    plates = _observe(FakeDetector(STICKER), WidthReader(whole=0.2))
    assert plates == [(STICKER.box, "1207")]


# The same plate framed 4:3 (320x240): the detector finds the plate itself (its zoom-out pass)
# beside the sticker; the photo is not of a plate's shape, so it is not read whole.
PLATE_IN_FRAME = Detection(Box(0, 40, 320, 160), 0.7, "plate")


def test_a_plate_found_half_the_photo_wide_makes_the_narrower_ones_its_details() -> None:
    plates = _observe(FakeDetector(STICKER, PLATE_IN_FRAME), WidthReader(registration=0.9), 240)
    assert plates == [(PLATE_IN_FRAME.box, "251RGF")]


def test_a_wide_box_that_does_not_read_like_a_plate_leaves_the_others_alone() -> None:
    # read too unsure to be a plate at all: the sticker is still reported
    plates = _observe(FakeDetector(STICKER, PLATE_IN_FRAME), WidthReader(whole=0.2), 240)
    assert plates == [(STICKER.box, "1207")]
