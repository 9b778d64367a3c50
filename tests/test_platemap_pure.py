"""The plate map's pure parts: DB training targets, the grey input, merging with the detector."""

from __future__ import annotations

import numpy as np
import pytest

from inference.engine import (
    EngineSettings,
    PlateCandidate,
    PlateEngine,
    merge_mapped,
    reported_box,
)
from inference.records import Box, Candidate, Detection, OcrResult
from inference.textlines import TextLine, TextLineSettings, lines_from_probability, preprocess
from tests.kit.turned import turned_bar
from training.platemap.targets import plate_map, shrink


def _quad(x: float, y: float, w: float, h: float) -> np.ndarray:
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)


def test_a_plate_shrinks_by_db_offset_whatever_its_winding() -> None:
    # D = A (1 - 0.4^2) / L = 240 * 0.84 / 76 for a 30x8 plate
    d = 240 * 0.84 / 76
    core = shrink(_quad(10, 10, 30, 8))
    assert core is not None
    np.testing.assert_allclose(core.min(0), [10 + d, 10 + d])
    np.testing.assert_allclose(core.max(0), [40 - d, 18 - d])
    reverse = shrink(_quad(10, 10, 30, 8)[::-1])
    assert reverse is not None
    np.testing.assert_allclose(np.sort(reverse, 0), np.sort(core, 0))


def test_a_tilted_plate_keeps_its_tilt_when_shrunk() -> None:
    quad = np.array([[0, 10], [100, 0], [103, 30], [3, 40]], np.float64)
    core = shrink(quad)
    assert core is not None
    top = core[1] - core[0]
    np.testing.assert_allclose(top[1] / top[0], -0.1, atol=1e-9)  # edges stay parallel


def test_an_offset_that_eats_the_outline_gives_nothing() -> None:
    assert shrink(_quad(0, 0, 0.5, 0.5)) is None
    doubled = np.array([[0, 0], [30, 0], [30, 0], [30, 8], [0, 8]], np.float64)
    assert shrink(doubled) is None  # a repeated corner has no edge direction


def test_targets_mark_cores_and_ignore_tiny_and_cut_plates() -> None:
    plates = np.array([[10, 10, 30, 8], [50, 50, 6, 2]], np.float32)
    corners = np.full((2, 4, 2), np.nan, np.float32)
    cut = np.array([[0, 40, 10, 6]], np.float32)
    gt, mask = plate_map(64, plates, corners, cut)
    assert gt[13:16, 13:38].all() and gt.sum() == gt[13:16, 13:38].sum()
    assert gt[10, 10] == 0 and mask[10, 10] == 1  # the plate's rim is background
    assert mask[51, 53] == 0 and gt[51, 53] == 0  # 6x2: too small to learn, ignored
    assert mask[43, 5] == 0  # cut by the crop edge: ignored
    assert mask[30, 30] == 1


def test_known_corners_are_the_outline() -> None:
    corners = np.array([[[10, 12], [40, 10], [40, 20], [10, 22]]], np.float32)
    gt, _ = plate_map(64, np.array([[10, 10, 30, 12]], np.float32), corners, np.zeros((0, 4)))
    assert gt[14:18, 20].all() and not gt[11, 38]


def test_the_plate_map_sees_grey_replicated_like_its_training() -> None:
    frame = np.zeros((72, 128, 3), np.uint8)
    frame[..., 0] = 255  # pure red: grey 76 by ITU-R 601
    x, lb = preprocess(frame, (36, 64), grey=True)
    assert x.shape == (1, 36, 64, 3)
    np.testing.assert_allclose(x[0, 0, 0], [76 / 127.5 - 1] * 3, atol=0.01)
    bgr, _ = preprocess(frame, (36, 64))
    assert bgr[0, 0, 0, 2] == pytest.approx(1.0) and bgr[0, 0, 0, 0] == pytest.approx(-1.0)
    assert lb.scale == 0.5


def test_thin_cores_are_kept_down_to_min_side() -> None:
    prob = np.zeros((60, 120), np.float32)
    prob[20:22, 30:60] = 0.9  # a 2 px core: a distant plate
    assert lines_from_probability(prob, TextLineSettings()) == []
    assert len(lines_from_probability(prob, TextLineSettings(min_side=1.0))) == 1
    with pytest.raises(ValueError, match="min_side"):
        TextLineSettings(min_side=0.0)


def _det(x: float, y: float, w: float = 40, h: float = 12, score: float = 0.5) -> Detection:
    return Detection(Box(x, y, w, h), score, "plate")


def test_each_detection_is_paired_with_the_map_box_over_it_and_the_maps_own_follow() -> None:
    found = [_det(100, 100), _det(300, 100)]
    mapped = [_det(102, 101, 36, 10, 0.9), _det(500, 200, score=0.8)]
    seen = [
        (c.detection.box.x, c.source, c.other.box.x if c.other else None)
        for c in merge_mapped(found, mapped)
    ]
    assert seen == [(100, "both", 102), (300, "detector", None), (500, "map", None)]
    assert merge_mapped(found, []) == [PlateCandidate(d, "detector") for d in found]


def test_one_mapped_plate_is_not_given_to_two_detections() -> None:
    found = [_det(100, 100), _det(104, 101)]
    mapped = [_det(102, 100)]
    assert [c.source for c in merge_mapped(found, mapped)] == ["both", "detector"]


def _upright(b: Box) -> TextLine:
    """A plate map's line whose outline is the box itself."""
    corners = ((b.x, b.y), (b.x + b.w, b.y), (b.x + b.w, b.y + b.h), (b.x, b.y + b.h))
    return TextLine(b, corners, 0.8)


class _OneBox:
    def detect(self, frame: np.ndarray) -> list[Detection]:
        return [Detection(Box(100, 100, 120, 20), 0.9, "plate")]

    def close(self) -> None:
        pass


class _Map:
    """A plate map that boxes part of the detector's plate and a word elsewhere."""

    def find(self, frame: np.ndarray) -> list[TextLine]:
        return [_upright(Box(150, 100, 70, 20)), _upright(Box(250, 200, 40, 20))]

    def close(self) -> None:
        pass


class _Reads:
    """By crop width: the detector's box reads the whole plate at 0.6, the map's box cut
    through it reads fewer characters more surely, the map's lone box reads a word."""

    def read(self, crop: np.ndarray) -> OcrResult:
        w = crop.shape[1]
        text, conf = ("KX52ABC", 0.6) if w >= 110 else ("X52ABC", 0.9) if w >= 60 else (
            "TEXAS", 0.95)
        return OcrResult(text, conf, (0.9,) * len(text), (Candidate(text, conf),))

    def close(self) -> None:
        pass


def test_a_shorter_read_of_the_same_plate_never_wins_and_lone_words_are_dropped() -> None:
    frame = np.zeros((400, 500, 3), np.uint8)
    # _Reads goes by crop width, so it would read two rows put side by side (``inference.rows``)
    # as the plate; the two-row reading has its own tests (tests/test_rows.py).
    eng = PlateEngine(
        _OneBox(), _Reads(), EngineSettings(plate_map=True, two_rows=False), plate_map=_Map()  # type: ignore[arg-type]
    )
    plates = eng.observe(frame).plates
    assert [(p.ocr.text, p.detection.box.x) for p in plates] == [("KX52ABC", 100)]
    eng.settings = EngineSettings(two_rows=False)
    assert [p.ocr.text for p in eng.observe(frame).plates] == ["KX52ABC"]


class _NoMap:
    def find(self, frame: np.ndarray) -> list[TextLine]:
        return []

    def close(self) -> None:
        pass


class _Hopeless:
    """Every character legible on its own, the whole read at 0.02: what a grille reads as."""

    def read(self, crop: np.ndarray) -> OcrResult:
        return OcrResult("LLLIII", 0.02, (0.6,) * 6, (Candidate("LLLIII", 0.02),))

    def close(self) -> None:
        pass


def test_a_hopeless_read_the_map_disputes_is_no_plate_but_alone_the_detector_decides() -> None:
    frame = np.zeros((400, 500, 3), np.uint8)
    eng = PlateEngine(
        _OneBox(), _Hopeless(), EngineSettings(plate_map=True), plate_map=_NoMap()  # type: ignore[arg-type]
    )
    assert eng.observe(frame).plates == ()
    eng.settings = EngineSettings()  # the daemon: no map, no dispute
    assert [p.ocr.text for p in eng.observe(frame).plates] == ["LLLIII"]


class _Counting:
    """Reads every crop as the same plate at a fixed confidence, counting the reads."""

    def __init__(self, confidence: float) -> None:
        self.confidence = confidence
        self.reads = 0

    def read(self, crop: np.ndarray) -> OcrResult:
        self.reads += 1
        c = self.confidence
        return OcrResult("KX52ABC", c, (0.99,) * 7, (Candidate("KX52ABC", c),))

    def close(self) -> None:
        pass


def test_a_sure_read_ends_the_reading_of_its_plate() -> None:
    frame = np.zeros((400, 500, 3), np.uint8)
    # The plate both found, then the map's lone box: sure, each is read once with its margin;
    # unsure, the plate in both crops of both boxes and the lone box in both crops.
    for confidence, reads in ((0.99, 1 + 1), (0.9, 4 + 2)):
        reader = _Counting(confidence)
        eng = PlateEngine(
            _OneBox(), reader, EngineSettings(plate_map=True), plate_map=_Map()  # type: ignore[arg-type]
        )
        eng.observe(frame)
        assert reader.reads == reads, confidence
    reader = _Counting(0.99)
    eng = PlateEngine(
        _OneBox(),  # type: ignore[arg-type]
        reader,  # type: ignore[arg-type]
        EngineSettings(plate_map=True, sure_read=None),
        plate_map=_Map(),  # type: ignore[arg-type]
    )
    eng.observe(frame)
    assert reader.reads == 6


class _TurnedPlate:
    """A detector and a plate map round one plate rolled 12 degrees: the detector's box is
    axis-aligned, the map's outline is the rolled rectangle."""

    def __init__(self) -> None:
        _, self.quad = turned_bar(12.0)
        (x0, y0), (x1, y1) = self.quad.min(axis=0), self.quad.max(axis=0)
        self.box = Box(float(x0), float(y0), float(x1 - x0), float(y1 - y0))

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return [Detection(self.box, 0.9, "plate")]

    def find(self, frame: np.ndarray) -> list[TextLine]:
        corners = tuple((float(x), float(y)) for x, y in self.quad)
        return [TextLine(self.box, corners, 0.8)]

    def close(self) -> None:
        pass


class _SureWhenLevel:
    """Reads a crop as wide as a level plate (over 4:1) surely, anything squarer unsurely."""

    def read(self, crop: np.ndarray) -> OcrResult:
        text, conf = ("KX52ABC", 0.9) if crop.shape[1] > 4 * crop.shape[0] else ("KX52A", 0.3)
        return OcrResult(text, conf, (0.9,) * len(text), (Candidate(text, conf),))

    def close(self) -> None:
        pass


def test_an_unsure_rolled_plate_is_read_again_turned_level() -> None:
    plate = _TurnedPlate()
    frame = np.zeros((300, 400, 3), np.uint8)
    # _SureWhenLevel reads any crop over 4:1 surely, two rows side by side too (``inference.rows``
    # has its own tests): off here.
    eng = PlateEngine(
        plate,  # type: ignore[arg-type]
        _SureWhenLevel(),  # type: ignore[arg-type]
        EngineSettings(plate_map=True, two_rows=False),
        plate_map=plate,  # type: ignore[arg-type]
    )
    [obs] = eng.observe(frame).plates
    assert obs.ocr.text == "KX52ABC" and obs.crop.shape[1] > 4 * obs.crop.shape[0]
    assert obs.detection.box == plate.box  # the plate is still where it was found
    eng.settings = EngineSettings(two_rows=False)  # no map, no outline: the box is all there is
    eng.plate_map = None
    [obs] = eng.observe(frame).plates
    assert obs.ocr.text == "KX52A"


class _TightMap:
    """A plate map whose box agrees with the detector's (IoU 0.92) and hugs the plate tighter."""

    box = Box(105, 100, 110, 20)

    def find(self, frame: np.ndarray) -> list[TextLine]:
        return [_upright(self.box)]

    def close(self) -> None:
        pass


def test_a_sure_read_is_reported_in_the_maps_box_when_the_boxes_agree() -> None:
    frame = np.zeros((400, 500, 3), np.uint8)
    reader = _Counting(0.99)
    eng = PlateEngine(
        _OneBox(),  # type: ignore[arg-type]
        reader,  # type: ignore[arg-type]
        EngineSettings(plate_map=True),
        plate_map=_TightMap(),  # type: ignore[arg-type]
    )
    [obs] = eng.observe(frame).plates
    assert reader.reads == 1 and obs.detection.box == _TightMap.box


class _CutBox:
    """A detector that boxes a plate short of its left end; a map that boxes all of it."""

    def __init__(self, map_box: Box) -> None:
        self.map_box = map_box

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return [Detection(Box(130, 100, 90, 20), 0.9, "plate")]

    def find(self, frame: np.ndarray) -> list[TextLine]:
        return [_upright(self.map_box)]

    def close(self) -> None:
        pass


class _ReadsWhatIsBoxed:
    """Reads the cut box's characters surely and the whole plate a little less surely."""

    def __init__(self, whole: str = "B778NDA", sure: float = 0.97) -> None:
        self.whole, self.sure = whole, sure

    def read(self, crop: np.ndarray) -> OcrResult:
        text, c = ("778NDA", 0.99) if crop.shape[1] < 105 else (self.whole, self.sure)
        return OcrResult(text, c, (0.99,) * len(text), (Candidate(text, c),))

    def close(self) -> None:
        pass


def test_a_sure_read_of_a_cut_box_gives_way_to_the_whole_plate_in_a_wider_map_box() -> None:
    frame = np.zeros((400, 500, 3), np.uint8)
    wide = _CutBox(Box(100, 100, 120, 20))  # 1.33 times as wide
    eng = PlateEngine(
        wide, _ReadsWhatIsBoxed(), EngineSettings(plate_map=True), plate_map=wide  # type: ignore[arg-type]
    )
    [obs] = eng.observe(frame).plates
    assert obs.ocr.text == "B778NDA" and obs.detection.box == wide.map_box
    # another text in the wider box, less sure: the sure read stands
    eng.reader = _ReadsWhatIsBoxed("XB12CDE")  # type: ignore[assignment]
    assert [p.ocr.text for p in eng.observe(frame).plates] == ["778NDA"]
    # nor does a surer read of as many characters: only a read of more replaces a sure one
    eng.reader = _ReadsWhatIsBoxed("778N0A", 0.995)  # type: ignore[assignment]
    assert [p.ocr.text for p in eng.observe(frame).plates] == ["778NDA"]
    # a map box hardly wider is not read again after a sure read
    near = _CutBox(Box(127, 100, 104, 20))  # 1.16 times: it would read the whole plate
    eng = PlateEngine(
        near, _ReadsWhatIsBoxed(), EngineSettings(plate_map=True), plate_map=near  # type: ignore[arg-type]
    )
    [obs] = eng.observe(frame).plates
    assert obs.ocr.text == "778NDA" and obs.detection.box == near.map_box  # agreeing boxes


class _WholeReads:
    """Reads only a whole photo-sized crop (the frame) as a plate, surely; records its thread."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.threads: list[str] = []

    def read(self, crop: np.ndarray) -> OcrResult:
        import threading

        self.threads.append(threading.current_thread().name)
        text, c = ("KX52ABC", 0.95) if crop.shape[1] == self.width else ("", 0.0)
        return OcrResult(text, c, (0.99,) * len(text), (Candidate(text, c),))

    def close(self) -> None:
        pass


def test_the_whole_photo_is_read_on_the_second_thread_with_its_own_reader() -> None:
    frame = np.zeros((200, 500, 3), np.uint8)  # plate-shaped: 2.5:1
    main, beside = _WholeReads(500), _WholeReads(500)
    eng = PlateEngine(
        _OneBox(),  # type: ignore[arg-type]
        main,  # type: ignore[arg-type]
        EngineSettings(plate_map=True, text_fallback=True),
        plate_map=_Map(),  # type: ignore[arg-type]
        beside_reader=beside,  # type: ignore[arg-type]
    )
    [obs] = eng.observe(frame).plates
    assert obs.ocr.text == "KX52ABC" and obs.detection.box == Box(0, 0, 500, 200)
    assert beside.threads and all(t.startswith("plate-map") for t in beside.threads)
    assert all(not t.startswith("plate-map") for t in main.threads)
    eng.close()


class _Failing:
    def detect(self, frame: np.ndarray) -> list[Detection]:
        raise ValueError("strange array")

    def close(self) -> None:
        pass


class _SlowMap(_Map):
    def __init__(self) -> None:
        self.done = False

    def find(self, frame: np.ndarray) -> list[TextLine]:
        import time

        time.sleep(0.05)
        self.done = True
        return []


def test_a_failed_frame_leaves_nothing_running_on_the_second_thread() -> None:
    from inference.errors import FrameError

    mapper = _SlowMap()
    eng = PlateEngine(
        _Failing(),  # type: ignore[arg-type]
        _Counting(0.9),  # type: ignore[arg-type]
        EngineSettings(plate_map=True),
        plate_map=mapper,  # type: ignore[arg-type]
    )
    with pytest.raises(FrameError):
        eng.observe(np.zeros((100, 300, 3), np.uint8))
    assert mapper.done


_DET = Detection(Box(100, 100, 120, 24), 0.9, "plate")
_MAP_TALL = Detection(Box(98, 92, 124, 40), 0.8, "plate")  # IoU 0.58 with _DET
_MAP_SHORT = Detection(Box(104, 102, 114, 18), 0.8, "plate")  # IoU 0.71 with _DET


def test_a_plate_both_boxed_is_reported_in_the_shorter_box_whichever_read_it() -> None:
    tall = PlateCandidate(_DET, "both", _MAP_TALL)
    assert reported_box(tall, _MAP_TALL, read_more=False) is _DET
    assert reported_box(tall, _DET, read_more=False) is _DET
    short = PlateCandidate(_DET, "both", _MAP_SHORT)
    assert reported_box(short, _DET, read_more=False) is _MAP_SHORT
    assert reported_box(short, _MAP_SHORT, read_more=False) is _MAP_SHORT


def test_the_read_box_stays_when_the_boxes_disagree_or_the_read_needed_it() -> None:
    apart = Detection(Box(100, 100, 120, 80), 0.8, "plate")  # IoU 0.3
    cand = PlateCandidate(_DET, "both", apart)
    assert reported_box(cand, apart, read_more=False) is apart
    # the map's box read the whole of a plate the detector's box cut short: it stays
    tall = PlateCandidate(_DET, "both", _MAP_TALL)
    assert reported_box(tall, _MAP_TALL, read_more=True) is _MAP_TALL
    # a box grown to take in a second row is the plate's
    grown = Detection(Box(100, 76, 120, 48), 0.9, "plate")
    assert reported_box(tall, grown, read_more=False) is grown
    alone = PlateCandidate(_DET, "detector")
    assert reported_box(alone, _DET, read_more=False) is _DET
