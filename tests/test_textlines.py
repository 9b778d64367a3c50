"""The text-line second opinion: DB post-processing, plate candidates, the engine's fallback."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from inference.engine import PlateEngine, reads_like_plate
from inference.ocr import char_marginals
from inference.records import Box, Candidate, Detection, OcrResult
from inference.textlines import TextLine, TextLineSettings, lines_from_probability, plate_candidates


def _line(x: float, y: float, w: float, h: float) -> TextLine:
    return TextLine(Box(x, y, w, h), ((x, y), (x + w, y), (x + w, y + h), (x, y + h)), 0.9)


def test_each_confident_region_is_a_line_grown_back_out() -> None:
    prob = np.zeros((100, 200), np.float32)
    prob[20:30, 20:120] = 0.9  # a line
    prob[60:70, 50:90] = 0.4  # above the pixel threshold, below the region threshold
    lines = lines_from_probability(prob, TextLineSettings())
    assert len(lines) == 1
    pts, score = lines[0]
    assert 0.75 < score <= 0.9  # the mean over the (dilated) region's outline too
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    # Grown on every side by area x 1.6 / perimeter (about 7 px for a 100x10 core).
    assert x0 < 20 - 5 and x1 > 120 + 5 and y0 < 20 - 5 and y1 > 30 + 5


def test_lines_come_best_first_and_capped() -> None:
    prob = np.zeros((100, 300), np.float32)
    for i, p in enumerate((0.6, 0.95, 0.8)):
        prob[10 + 30 * i : 20 + 30 * i, 20:200] = p
    lines = lines_from_probability(prob, TextLineSettings(max_lines=2))
    scores = [s for _, s in lines]
    assert len(scores) == 2 and scores[0] > scores[1] > 0.6


def test_stacked_lines_make_a_two_row_candidate_first() -> None:
    top, low = _line(100, 100, 60, 20), _line(95, 124, 70, 22)
    cands = plate_candidates([top, low])
    union = cands[0]
    assert (union.x, union.y) == (95, 100)
    assert union.x + union.w == 165 and union.y + union.h == 146
    assert top.box in cands and low.box in cands


def test_lines_side_by_side_or_of_no_plate_shape_are_not_candidates_together() -> None:
    a, b = _line(0, 100, 60, 20), _line(200, 100, 60, 20)
    assert plate_candidates([a, b]) == [a.box, b.box]
    tall = _line(0, 0, 20, 60)  # narrower than high: not a registration
    tiny = _line(0, 0, 20, 4)
    assert plate_candidates([tall, tiny]) == []


def _ocr(text: str, confs: tuple[float, ...]) -> OcrResult:
    return OcrResult(text, 0.5, confs, (Candidate(text, 0.5),))


def test_a_text_line_reads_like_a_plate_only_when_whole_and_certain() -> None:
    assert reads_like_plate(_ocr("KX52ABC", (0.9,) * 7))
    assert not reads_like_plate(_ocr("KX5", (0.9,) * 3))  # too short
    assert not reads_like_plate(_ocr("KX52ABCDEFGH", (0.9,) * 12))  # too long
    assert not reads_like_plate(_ocr("KX52?BC", (0.9, 0.9, 0.9, 0.9, 0.2, 0.9, 0.9)))
    assert not reads_like_plate(_ocr("KX52ABC", (0.9, 0.9, 0.9, 0.9, 0.4, 0.9, 0.9)))


def test_char_marginals_share_the_candidates_mass_per_position() -> None:
    cands = [Candidate("THAXSWK", 0.26), Candidate("TMAXSWK", 0.17), Candidate("THAX5WK", 0.08)]
    m = char_marginals("THAXSWK", cands)
    total = 0.26 + 0.17 + 0.08
    assert m[0] == pytest.approx(1.0)
    assert m[1] == pytest.approx((0.26 + 0.08) / total)
    assert m[4] == pytest.approx((0.26 + 0.17) / total)
    # Not the whole text's probability on every character, which made all of them look
    # illegible although only one was in doubt.
    assert min(m) > 0.26
    assert char_marginals("", cands) == ()
    assert char_marginals("AB", []) == (0.0, 0.0)


def _plate_photo() -> np.ndarray:
    img = np.full((360, 480, 3), 90, np.uint8)
    cv2.rectangle(img, (120, 150), (360, 210), (235, 235, 235), -1)
    cv2.rectangle(img, (120, 150), (360, 210), (20, 20, 20), 2)
    cv2.putText(img, "KX52 ABC", (135, 196), cv2.FONT_HERSHEY_SIMPLEX, 1.3, (15, 15, 15), 4)
    return img


class _BlindDetector:
    """A plate detector that finds nothing: what the fallback is for."""

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return []

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def engine() -> Iterator[PlateEngine]:
    with PlateEngine.load(text_fallback=True, photos=True) as e:
        yield e


def test_the_text_detector_finds_the_registration(engine: PlateEngine) -> None:
    assert engine.text_lines is not None
    lines = engine.text_lines.find(_plate_photo())
    assert lines
    truth = Box(135, 165, 205, 35)
    assert max(ln.box.iou(truth) for ln in lines) >= 0.6


def test_the_engine_reads_a_text_line_when_the_detector_finds_nothing(
    engine: PlateEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "detector", _BlindDetector())
    plates = engine.observe(_plate_photo()).plates
    assert [p.ocr.text for p in plates] == ["KX52ABC"]
    assert plates[0].detection.label == "plate"


def test_without_the_fallback_a_blind_detector_gives_nothing(
    engine: PlateEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    monkeypatch.setattr(engine, "detector", _BlindDetector())
    monkeypatch.setattr(engine, "settings", replace(engine.settings, text_fallback=False))
    assert engine.observe(_plate_photo()).plates == ()


def test_a_plain_scene_gives_no_plate_from_text_lines(
    engine: PlateEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "detector", _BlindDetector())
    rng = np.random.default_rng(3)
    scene = cv2.GaussianBlur(rng.integers(0, 255, (360, 480, 3), dtype=np.uint8), (9, 9), 0)
    assert engine.observe(scene).plates == ()


def test_a_photo_of_a_plate_is_read_as_the_plate(engine: PlateEngine) -> None:
    import json
    from pathlib import Path

    data = Path(__file__).resolve().parent / "data" / "ocr"
    labels = json.loads((data / "truth.json").read_text())
    read = 0
    for name in ("ct704.jpg", "la1160.jpg", "md962.jpg", "mi1346.jpg"):
        photo = cv2.cvtColor(cv2.imread(str(data / name)), cv2.COLOR_BGR2RGB)
        plates = engine.observe(photo).plates
        if [p.ocr.text for p in plates] == [labels[name]["text"]]:
            # The plate is the photo (or the detector's box of nearly all of it).
            assert plates[0].detection.box.w >= 0.9 * photo.shape[1]
            read += 1
    assert read >= 3
    # Close-ups where the detector boxes a sticker ("?XK34?M") or finds nothing.
    for name in ("nc1289.jpg", "sc440.jpg"):
        photo = cv2.cvtColor(cv2.imread(str(data / name)), cv2.COLOR_BGR2RGB)
        plates = engine.observe(photo).plates
        assert [p.ocr.text for p in plates] == [labels[name]["text"]]
        assert plates[0].detection.box == Box(0.0, 0.0, photo.shape[1], photo.shape[0])


def test_a_scene_is_not_read_as_one_plate(engine: PlateEngine) -> None:
    wide = cv2.resize(_plate_photo(), (960, 360))  # plate-shaped frame, small plate in it
    plates = engine.observe(wide).plates
    assert all(p.detection.box.w < 600 for p in plates)


class _OneBox:
    def detect(self, frame: np.ndarray) -> list[Detection]:
        return [Detection(Box(100, 100, 80, 20), 0.9, "plate")]

    def close(self) -> None:
        pass


class _SurerWhenTight:
    """Reads the crop cut exactly at the box (80x20) more surely than the one with a margin."""

    def read(self, crop: np.ndarray) -> OcrResult:
        tight = crop.shape[:2] == (20, 80)
        text, conf = ("KX52ABC", 0.9) if tight else ("KX52A8C", 0.6)
        return OcrResult(text, conf, (0.9,) * 7, (Candidate(text, conf),))

    def close(self) -> None:
        pass


def test_the_surer_of_the_margin_and_the_exact_cut_is_kept() -> None:
    from inference.engine import EngineSettings

    frame = np.zeros((300, 400, 3), np.uint8)
    both = PlateEngine(_OneBox(), _SurerWhenTight(), EngineSettings())  # type: ignore[arg-type]
    [obs] = both.observe(frame).plates
    assert obs.ocr.text == "KX52ABC" and obs.crop.shape[:2] == (20, 80)
    one = PlateEngine(
        _OneBox(), _SurerWhenTight(), EngineSettings(second_crop=False)  # type: ignore[arg-type]
    )
    [obs] = one.observe(frame).plates
    assert obs.ocr.text == "KX52A8C" and obs.crop.shape[:2] != (20, 80)
