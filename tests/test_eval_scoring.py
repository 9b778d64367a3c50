"""End-to-end scoring (inference.evaluation): matching, localisation, reading, calibration."""

from __future__ import annotations

import pytest

from inference.evaluation import (
    ImageResult,
    LabelledImage,
    LabelledPlate,
    PredictedPlate,
    calibration_error,
    edit_distance,
    evaluate,
    failures,
    match_image,
    report,
    width_bucket,
)
from inference.records import Box


def truth(*plates: tuple[tuple[float, float, float, float], str | None]) -> LabelledImage:
    return LabelledImage("a.jpg", tuple(LabelledPlate(Box(*b), t, "eu") for b, t in plates))


def pred(
    box: tuple[float, float, float, float],
    text: str,
    conf: float = 0.9,
    cands: tuple[str, ...] = (),
) -> PredictedPlate:
    return PredictedPlate(Box(*box), text, conf, cands)


def test_exact_read_needs_the_same_text_on_the_matched_plate() -> None:
    t = truth(((100, 100, 100, 30), "B37RYO"), ((400, 100, 100, 30), "IF05TAC"))
    r = ImageResult(
        "a.jpg",
        10.0,
        (
            pred((102, 101, 98, 29), "B37RYO"),
            pred((400, 100, 100, 30), "IF05TAG", cands=("IF05TAC",)),
        ),
    )
    outcomes, false_plates = match_image(t, r)
    assert [o.exact for o in outcomes] == [True, False]
    assert [o.in_top_n for o in outcomes] == [True, True]
    assert false_plates == 0


def test_loose_box_still_carries_its_read_but_is_not_found_at_iou_05() -> None:
    t = truth(((100, 100, 100, 30), "B37RYO"))
    loose = pred((60, 80, 180, 70), "B37RYO")  # centre inside the plate, IoU ~0.24
    (o,), false_plates = match_image(t, ImageResult("a.jpg", 1.0, (loose,)))
    assert o.exact and o.iou < 0.5 and false_plates == 0
    rep = report(evaluate([t], [ImageResult("a.jpg", 1.0, (loose,))]))
    assert rep["exact_read"] == 1.0 and rep["det_recall_50"] == 0.0


def test_false_plates_and_misses() -> None:
    t = truth(((100, 100, 100, 30), "B37RYO"))
    r = ImageResult("a.jpg", 5.0, (pred((500, 300, 80, 20), "XYZ"), pred((600, 10, 50, 20), "Q")))
    rep = report(evaluate([t], [r]))
    assert rep["exact_read"] == 0.0 and rep["det_recall_50"] == 0.0
    assert rep["false_plates_per_image"] == 2.0
    assert rep["cer"] == 1.0  # nothing read: every character missing
    assert [o.truth.text for o in failures(evaluate([t], [r]))] == ["B37RYO"]


def test_one_prediction_matches_one_plate() -> None:
    t = truth(((100, 100, 100, 30), "AAA111"), ((105, 100, 100, 30), "AAA111"))
    (o1, o2), false_plates = match_image(
        t, ImageResult("a.jpg", 1.0, (pred((104, 100, 100, 30), "AAA111"),))
    )
    assert sum(o.pred is not None for o in (o1, o2)) == 1 and false_plates == 0


def test_unreadable_plates_count_for_localisation_only() -> None:
    t = truth(((100, 100, 100, 30), None), ((300, 100, 50, 20), "AB12"))
    r = ImageResult("a.jpg", 1.0, (pred((100, 100, 100, 30), "ZZZ"),))
    rep = report(evaluate([t], [r]))
    assert rep["readable"] == 1 and rep["unreadable"] == 1
    assert rep["exact_read"] == 0.0 and rep["det_recall_50"] == 0.5
    assert rep["det_recall_50_readable"] == 0.0  # the readable one was missed


def test_breakdowns_timings_and_errors() -> None:
    imgs = [
        LabelledImage("s.jpg", (LabelledPlate(Box(0, 0, 40, 10), "AB1", "us"),)),
        LabelledImage("b.jpg", (LabelledPlate(Box(0, 0, 250, 60), "CD2", "br"),)),
        LabelledImage("x.jpg", ()),
    ]
    results = [
        ImageResult("s.jpg", 10.0, ()),
        ImageResult("b.jpg", 30.0, (pred((0, 0, 250, 60), "CD2"),)),
        ImageResult("x.jpg", 0.0, (), error="not a readable image"),
    ]
    rep = report(evaluate(imgs, results))
    assert rep["by_width"]["<60"]["exact_read"] == 0.0
    assert rep["by_width"][">200"]["exact_read"] == 1.0
    assert set(rep["by_region"]) == {"us", "br"}
    assert rep["errors"] == 1 and rep["ms_median"] == 20.0


@pytest.mark.parametrize(
    ("w", "bucket"), [(30, "<60"), (60, "60-100"), (150, "100-200"), (200, ">200"), (900, ">200")]
)
def test_width_buckets(w: float, bucket: str) -> None:
    assert width_bucket(w) == bucket


def test_edit_distance_and_calibration() -> None:
    assert edit_distance("B37RYO", "B37RY0") == 1
    assert edit_distance("", "ABC") == 3
    assert edit_distance("ABCD", "ABD") == 1
    assert calibration_error([(0.9, True)] * 9 + [(0.9, False)]) == pytest.approx(0.0, abs=1e-9)
    assert calibration_error([(0.9, False)] * 10) == pytest.approx(0.9)
    assert calibration_error([]) is None
