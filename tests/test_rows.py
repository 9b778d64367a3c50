"""Two-row plates: where the rows part, and how their reads join."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inference import rows
from inference.records import Candidate, OcrResult


def _two_row_plate() -> np.ndarray:
    img = np.full((60, 90, 3), 230, np.uint8)
    cv2.putText(img, "AB12", (5, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2)
    cv2.putText(img, "CDE", (10, 55), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2)
    return img


def _read(*cands: tuple[str, float], region: str | None = None) -> OcrResult:
    c = tuple(Candidate(t, p) for t, p in cands)
    return OcrResult(c[0].text, c[0].confidence, (0.9,) * len(c[0].text), c, region, 0.8)


def test_the_rows_part_between_the_lines_of_text() -> None:
    img = _two_row_plate()
    gap = rows.row_gap(img)
    assert 25 <= gap <= 36  # between the first line's baseline and the second's tops
    upper, lower = rows.split_rows(img)
    assert upper.shape[0] + lower.shape[0] > 60  # they overlap a little
    assert upper.shape[1] == lower.shape[1] == 90


def test_only_short_crops_read_short_are_tried() -> None:
    square = _two_row_plate()
    wide = np.zeros((20, 100, 3), np.uint8)
    tiny = np.zeros((10, 15, 3), np.uint8)
    assert rows.may_have_two_rows(square, _read(("CDE", 0.99)))
    assert rows.may_have_two_rows(square, _read(("6255B", 0.6)))
    assert not rows.may_have_two_rows(square, _read(("AB12CDE", 0.6)))
    assert not rows.may_have_two_rows(wide, _read(("CDE", 0.5)))
    assert not rows.may_have_two_rows(tiny, _read(("CDE", 0.5)))


def test_joined_rows_multiply_and_keep_the_whole_plates_region() -> None:
    upper = _read(("AB12", 0.9), ("A812", 0.05))
    lower = _read(("CDE", 0.8), ("COE", 0.1))
    whole = _read(("CDE", 0.95), region="eu")
    out = rows.join_rows(upper, lower, whole, top_n=3)
    assert out.text == "AB12CDE"
    assert out.confidence == pytest.approx(0.72)
    assert [c.text for c in out.candidates] == ["AB12CDE", "AB12COE", "A812CDE"]
    assert out.char_confidences == (0.9,) * 7
    assert out.region == "eu" and out.plate_class == "full"


def test_the_rows_read_wins_when_longer_and_sure_enough() -> None:
    line = _read(("BXX", 0.9))
    assert rows.rows_read_better(_read(("6255BXX", 0.6)), line)
    assert not rows.rows_read_better(_read(("6255BXX", 0.4)), line)  # under 0.5
    assert not rows.rows_read_better(_read(("BX", 0.99)), line)  # not longer
    state_and_number = _read(("TEXAS1032148", 0.9))  # a US plate's state name is no row
    assert not rows.rows_read_better(state_and_number, _read(("1032148", 0.9)))
