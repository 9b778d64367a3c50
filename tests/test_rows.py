"""Two-row plates: where the rows part, and how they become one line."""

from __future__ import annotations

import cv2
import numpy as np

from inference import rows
from inference.engine import EngineSettings, PlateEngine
from inference.records import Box, Candidate, Detection, OcrResult


def _two_row_plate() -> np.ndarray:
    img = np.full((60, 90, 3), 230, np.uint8)
    cv2.putText(img, "AB12", (5, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2)
    cv2.putText(img, "CDE", (10, 55), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2)
    return img


def _read(
    *cands: tuple[str, float], region: str | None = None, region_confidence: float = 0.8
) -> OcrResult:
    c = tuple(Candidate(t, p) for t, p in cands)
    return OcrResult(
        c[0].text, c[0].confidence, (0.9,) * len(c[0].text), c, region, region_confidence
    )


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


def test_stitched_rows_make_one_line_upper_row_first() -> None:
    img = _two_row_plate()
    line = rows.stitched(img)
    upper, lower = rows.split_rows(img)
    h = max(upper.shape[0], lower.shape[0])
    assert line.shape[0] == h and line.dtype == img.dtype and line.ndim == 3
    assert line.shape[1] > 2 * img.shape[1]  # both rows and the gap between them
    ink = (line < 128).any(axis=(0, 2))
    gap = slice(line.shape[1] // 2 - 2, line.shape[1] // 2 + 2)
    assert not ink[gap].any()  # the plate's own background between the rows
    assert ink[: line.shape[1] // 2 - 2].any() and ink[line.shape[1] // 2 + 2 :].any()
    grey = rows.stitched(img[:, :, 0])
    assert grey.ndim == 2 and grey.shape[0] == h


def test_the_rows_read_wins_when_longer_and_sure_enough() -> None:
    line = _read(("BXX", 0.9))
    assert rows.rows_read_better(_read(("6255BXX", 0.6)), line)
    assert not rows.rows_read_better(_read(("6255BXX", 0.4)), line)  # under 0.5
    doubtful = _read(("T7TR", 0.12))
    assert rows.rows_read_better(_read(("PBT0Q73", 0.3)), doubtful)  # surer than the line
    assert not rows.rows_read_better(_read(("PBT0Q73", 0.1)), doubtful)
    assert not rows.rows_read_better(_read(("BX", 0.99)), line)  # not longer
    state_and_number = _read(("TEXAS1032148", 0.9))  # a US plate's state name is no row
    assert not rows.rows_read_better(state_and_number, _read(("1032148", 0.9)))


def test_a_row_shaped_box_read_short_may_be_one_row() -> None:
    row = Box(100, 100, 60, 20)
    assert rows.may_be_one_row(row, _read(("1D23", 0.95)))
    assert not rows.may_be_one_row(row, _read(("ABC1D23", 0.95)))  # a whole plate's read
    assert not rows.may_be_one_row(Box(100, 100, 40, 30), _read(("1D23", 0.95)))  # squarish
    assert not rows.may_be_one_row(Box(100, 100, 30, 6), _read(("1D2", 0.95)))  # too few rows


def test_a_row_is_grown_up_and_down_within_the_frame() -> None:
    up, down = rows.row_completions(Box(100, 100, 60, 20), (400, 500))
    assert up == Box(100, 76, 60, 44) and down == Box(100, 100, 60, 44)
    (only_down,) = rows.row_completions(Box(100, 5, 60, 20), (400, 500))
    assert only_down.y == 5  # no room above for half a row
    (only_up,) = rows.row_completions(Box(100, 375, 60, 20), (400, 500))
    assert only_up.y + only_up.h == 395


class _LowerRow:
    """A detector that boxes the lower row of a two-row plate alone."""

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return [Detection(Box(100, 124, 60, 20), 0.9, "plate")]

    def close(self) -> None:
        pass


class _ByShape:
    """The row alone reads 1D23 surely; two rows side by side (a long line) read the plate."""

    def read(self, crop: np.ndarray) -> OcrResult:
        h, w = crop.shape[:2]
        text, conf = ("ABC1D23", 0.9) if w > 4 * h else ("1D23", 0.97)
        return OcrResult(text, conf, (0.9,) * len(text), (Candidate(text, conf),))

    def close(self) -> None:
        pass


def test_the_engine_grows_a_lone_row_to_the_whole_plate() -> None:
    frame = np.zeros((400, 500, 3), np.uint8)
    eng = PlateEngine(_LowerRow(), _ByShape(), EngineSettings())  # type: ignore[arg-type]
    (plate,) = eng.observe(frame).plates
    assert plate.ocr.text == "ABC1D23"
    b = plate.detection.box
    assert b.h > 40 and b.x == 100 and plate.detection.corners is None
    eng.settings = EngineSettings(two_rows=False)
    assert [p.ocr.text for p in eng.observe(frame).plates] == ["1D23"]


def test_a_stitched_read_prefers_a_likely_brazilian_format_only_in_auto() -> None:
    from inference.engine import prefer_brazil_two_row

    motorcycle = _read(("OLV85T958", 0.5), ("OLV5T95", 0.1), ("0LV5T95", 0.04), region="eu")
    out = prefer_brazil_two_row(motorcycle, "auto")
    assert out.text == "OLV5T95" and out.region is None  # the region head's "eu" dropped
    assert prefer_brazil_two_row(motorcycle, "eu") == motorcycle  # a set country decides
    unlikely = _read(("OLV85T958", 0.9), ("OLV5T95", 0.05))  # under a tenth of the top
    assert prefer_brazil_two_row(unlikely, "auto") == unlikely
    square = _read(("SG944N", 0.7), ("SG9444N", 0.2))  # a European square plate: no fit
    assert prefer_brazil_two_row(square, "auto") == square


def test_a_stitched_read_that_fits_brazil_is_not_traded_for_a_european_format() -> None:
    from inference.engine import EU_FORMAT_CONFIDENCE, apply_country, two_row_formats

    mercosur = _read(("IYW5Z31", 0.7), ("IYW5231", 0.13), region="eu",
                     region_confidence=EU_FORMAT_CONFIDENCE)
    assert apply_country(mercosur, "auto").text == "IYW5231"  # one-row plates: Europe's rule
    assert two_row_formats(mercosur, "auto") == mercosur
    assert two_row_formats(mercosur, "eu").text == "IYW5231"  # a set country still decides
    square = _read(("SG944N", 0.7), ("SG9444N", 0.2), region="eu")
    assert two_row_formats(square, "auto") == apply_country(square, "auto")
