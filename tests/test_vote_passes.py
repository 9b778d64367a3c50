from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.passes import VotedRead
from inference.records import Box, Detection, OcrResult, PlateObservation
from inference.tracker import PlateTrack, TrackerSettings, TrackPoint
from inference.vote import Deduplicator, align, edit_distance, vote_track


def point(
    t: float,
    text: str,
    conf: float = 0.9,
    chars: tuple[float, ...] | None = None,
    region: str | None = "us-CA",
    plate_class: str = "full",
    h: float = 40,
) -> TrackPoint:
    cc = chars if chars is not None else (conf,) * len(text)
    ocr = OcrResult(
        text, conf, cc, (), region=region, region_confidence=0.8, plate_class=plate_class
    )
    crop = np.zeros((int(h), int(2 * h), 3), np.uint8)
    crop[:, ::3] = 255
    return TrackPoint(t, PlateObservation(Detection(Box(0, 0, 2 * h, h), 0.9), ocr, crop))


def track(points: list[TrackPoint], best: int = 0, direction: str = "approaching") -> PlateTrack:
    return PlateTrack(1, tuple(points), direction, best)


def test_unanimous_read() -> None:
    r = vote_track(track([point(i * 0.1, "7ABC123") for i in range(5)]))
    assert isinstance(r, VotedRead)
    assert r.text == "7ABC123" and r.frames_used == 5
    assert r.confidence == pytest.approx(0.9, rel=1e-3)
    assert r.candidates[0].confidence == r.confidence
    assert r.candidates[0].text == "7ABC123"
    assert r.region == "us-CA" and r.plate_class == "full"


def test_character_majority_beats_any_single_frame() -> None:
    # every frame has one error, in a different place; the vote is right
    reads = ["8ABC123", "7A8C123", "7ABC1Z3", "7ABC123", "7ABG123"]
    r = vote_track(track([point(i * 0.1, s) for i, s in enumerate(reads)]))
    assert r.text == "7ABC123"
    assert len(r.candidates) > 1 and r.candidates[1].confidence <= r.candidates[0].confidence


def test_confident_characters_outvote_unsure_ones() -> None:
    sure = point(0.0, "ABC123", chars=(0.95,) * 6)
    unsure = [point(0.1 * i, "ABC128", chars=(0.95,) * 5 + (0.1,)) for i in range(1, 3)]
    r = vote_track(track([sure, *unsure]))
    assert r.text == "ABC123"
    assert r.char_confidences[-1] < r.char_confidences[0]


def test_majority_length_and_alignment_of_other_lengths() -> None:
    # a clipped first frame ("BC123") and a spurious extra char must not shift positions
    pts = [
        point(0.0, "BC123"),
        point(0.1, "ABC1234"),
        point(0.2, "ABC123"),
        point(0.3, "ABC123"),
        point(0.4, "AB?123"),
    ]
    r = vote_track(track(pts))
    assert r.text == "ABC123"
    assert r.frames_used == 5


def test_unknown_characters_lower_the_share_and_can_stay_unknown() -> None:
    r = vote_track(track([point(0.0, "AB?1"), point(0.1, "AB?1")]))
    assert r.text == "AB?1" and r.char_confidences[2] == 0.0
    assert r.plate_class == "partial"
    r2 = vote_track(track([point(0.0, "AB?1"), point(0.1, "ABC1")]))
    assert r2.text == "ABC1" and r2.char_confidences[2] == pytest.approx(0.45)


def test_region_and_class_by_weighted_vote() -> None:
    pts = [
        point(0.0, "ABC123", 0.9, region="us-TX", plate_class="paper"),
        point(0.1, "ABC123", 0.9, region="us-TX", plate_class="paper"),
        point(0.2, "ABC123", 0.3, region="us-CA"),
        point(0.3, "ABC123", 0.3, region=None),
    ]
    r = vote_track(track(pts))
    assert r.region == "us-TX" and r.plate_class == "paper"
    assert 0 < r.region_confidence < 0.8


def test_best_crop_and_times_come_from_the_track() -> None:
    pts = [point(1.0, "ABC123", h=30), point(1.1, "ABC123", h=60), point(1.2, "ABC123", h=40)]
    r = vote_track(track(pts, best=1))
    assert r.best_frame_index == 1 and r.best_frame_s == 1.1
    assert r.best_crop.shape[0] == 60 and r.box.h == 60
    assert (r.first_seen_s, r.last_seen_s) == (1.0, 1.2)


def test_empty_reads_give_empty_text() -> None:
    r = vote_track(track([point(0.0, ""), point(0.1, "")]))
    assert r.text == "" and r.confidence == 0.0 and r.frames_used == 0
    assert r.plate_class == "partial"


def test_candidate_count_setting() -> None:
    reads = ["ABC123", "ABG123", "ABC128", "A8C123"]
    r = vote_track(track([point(i, s) for i, s in enumerate(reads)]), TrackerSettings(candidates=3))
    assert len(r.candidates) == 3
    assert len({c.text for c in r.candidates}) == 3


def test_align_and_edit_distance() -> None:
    assert edit_distance("ABC123", "ABC123") == 0
    assert edit_distance("BC123", "ABC123") == 1
    assert edit_distance("ABC1234", "ABC123") == 1
    pairs = align("BC123", "ABC123")
    assert (None, 0) in pairs and (0, 1) in pairs


def _read(text: str, t0: float, t1: float, direction: str = "approaching") -> VotedRead:
    base = vote_track(track([point(t0, text or "X"), point(t1, text or "X")], direction=direction))
    return VotedRead(**{**base.__dict__, "text": text})


def test_dedup_window_same_direction_only() -> None:
    d = Deduplicator(dedup_window_s=10.0)
    assert d.admit(_read("ABC123", 0, 2))
    assert not d.admit(_read("ABC123", 5, 6))  # split track, same pass
    assert d.admit(_read("ABC123", 7, 8, "receding"))  # coming back the other way
    assert d.admit(_read("XYZ999", 8, 9))
    assert d.admit(_read("ABC123", 30, 31))  # a later pass
    assert d.suppressed == 1


def test_dedup_edit_tolerance_and_empty_texts() -> None:
    d = Deduplicator(10.0, max_edits=1)
    assert d.admit(_read("ABC123", 0, 1))
    assert not d.admit(_read("ABC128", 2, 3))
    assert d.admit(_read("", 3, 4)) and d.admit(_read("", 4, 5))
    strict = Deduplicator(10.0, max_edits=0)
    assert strict.admit(_read("ABC123", 0, 1)) and strict.admit(_read("ABC128", 2, 3))


def test_confidence_is_the_weakest_position_and_independent_of_length() -> None:
    short = vote_track(track([point(i * 0.1, "AB123", 0.85) for i in range(20)]))
    long = vote_track(track([point(i * 0.1, "AB12345X", 0.85) for i in range(20)]))
    assert short.confidence == pytest.approx(0.85) == long.confidence
    split = ["AB123"] * 3 + ["AB128"] * 2
    r = vote_track(track([point(i * 0.1, s, 0.85) for i, s in enumerate(split)]))
    assert r.text == "AB123"
    assert r.confidence == pytest.approx(0.85 * 3 / 5)
    assert r.candidates[1].text == "AB128"
    assert r.candidates[1].confidence == pytest.approx(0.85 * 2 / 5)


@settings(max_examples=150, deadline=None)
@given(
    truth=st.text(alphabet="ABCDEFGHJKLMNPRSTUVWXYZ0123456789", min_size=4, max_size=8),
    n=st.integers(3, 15),
    data=st.data(),
)
def test_property_per_position_majority_wins(truth: str, n: int, data: st.DataObject) -> None:
    # every position read right by a strict majority of frames (others wrong anywhere) -> the
    # vote is the truth, whatever the single frames look like
    wrong_max = (n - 1) // 2
    reads = [list(truth) for _ in range(n)]
    for pos in range(len(truth)):
        wrong = data.draw(st.sets(st.integers(0, n - 1), max_size=wrong_max))
        for f in wrong:
            reads[f][pos] = data.draw(st.sampled_from([c for c in "XYZ0189?" if c != truth[pos]]))
    r = vote_track(track([point(i * 0.1, "".join(t)) for i, t in enumerate(reads)]))
    assert r.text == truth
    assert r.confidence > 0.45
