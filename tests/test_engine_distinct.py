"""One read per plate: the engine's rule for reads of the same plate from different passes."""

from __future__ import annotations

import numpy as np

from inference.engine import one_read_per_plate
from inference.records import Box, Detection, OcrResult, PlateObservation


def _obs(text: str, box: Box, confidence: float = 0.9) -> PlateObservation:
    chars = tuple(confidence for _ in text)
    ocr = OcrResult(text, confidence, chars, ())
    return PlateObservation(Detection(box, 0.5), ocr, np.zeros((4, 4, 3), np.uint8))


def _texts(observations: list[PlateObservation]) -> list[str]:
    return [o.ocr.text for o in observations]


def test_boxes_overlap_when_they_share_half_the_smaller_one() -> None:
    plate = Box(0, 0, 200, 60)
    assert plate.overlaps(Box(50, 10, 40, 20))  # wholly inside
    assert Box(50, 10, 40, 20).overlaps(plate)
    assert plate.overlaps(Box(180, 10, 40, 20))  # half of it in
    assert not plate.overlaps(Box(190, 10, 40, 20))  # a quarter in
    assert not plate.overlaps(Box(300, 10, 40, 20))


def test_half_a_close_up_registration_read_beside_the_whole_is_dropped() -> None:
    # the whole-frame pass boxes the middle of a Brazilian close-up the zoom-out pass found whole
    half = _obs("NV90", Box(42, 73, 124, 49), 0.98)
    whole = _obs("BNV9071", Box(2, 63, 230, 69), 0.96)
    assert one_read_per_plate([half, whole]) == [whole]


def test_the_same_plate_boxed_twice_is_reported_once_in_the_surer_box() -> None:
    loose = _obs("SB90TZI", Box(135, 719, 505, 154), 0.9898)
    tight = _obs("SB90TZI", Box(178, 725, 418, 138), 0.9932)
    assert one_read_per_plate([loose, tight]) == [tight]


def test_a_sticker_read_less_surely_inside_a_plate_is_part_of_it() -> None:
    plate = _obs("DP7160", Box(0, 0, 170, 88), 0.99)
    slogan = _obs("XAT0NWTHOUTREPR", Box(19, 69, 90, 17), 0.1)
    assert one_read_per_plate([plate, slogan]) == [plate]


def test_a_surer_read_inside_a_box_is_not_taken_for_a_sticker() -> None:
    # a loose box round the plate reads worse than the plate's own box inside it
    loose = _obs("AB12CD", Box(0, 0, 300, 120), 0.6)
    inner = _obs("KL34MN", Box(60, 40, 150, 40), 0.95)
    assert _texts(one_read_per_plate([loose, inner])) == ["AB12CD", "KL34MN"]


def test_only_a_read_that_looks_like_a_whole_plate_takes_others_in() -> None:
    banner = _obs("FL", Box(0, 0, 300, 120), 0.99)  # too short to be a plate
    plate = _obs("ABC1234", Box(60, 40, 150, 40), 0.9)
    assert _texts(one_read_per_plate([banner, plate])) == ["FL", "ABC1234"]


def test_plates_side_by_side_are_all_kept_in_their_order() -> None:
    a = _obs("ABC1234", Box(0, 0, 100, 30))
    b = _obs("ABC1234", Box(300, 0, 100, 30))  # two cars, one plate each, say a dealer's
    c = _obs("XYZ987", Box(95, 0, 100, 30))  # touches a: a sliver shared
    assert one_read_per_plate([a, b, c]) == [a, b, c]
