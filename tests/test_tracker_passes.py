from __future__ import annotations

import numpy as np
import pytest

from inference.passes import NoPlatePass
from inference.records import Box, Detection, FrameResult, OcrResult, PlateObservation
from inference.tracker import (
    PlateTrack,
    Tracker,
    TrackerSettings,
    direction_of,
    observation_quality,
    sharpness,
    text_similarity,
)


def obs(
    x: float,
    y: float,
    w: float = 80,
    h: float = 40,
    text: str = "ABC123",
    conf: float = 0.9,
    crop: np.ndarray | None = None,
) -> PlateObservation:
    ocr = OcrResult(text, conf, (conf,) * len(text), (), region="us-CA", region_confidence=0.8)
    if crop is None:
        crop = np.zeros((int(h), int(w), 3), np.uint8)
        crop[:, ::4] = 255  # stripes: a sharp crop
    return PlateObservation(Detection(Box(x, y, w, h), 0.9), ocr, crop)


def vehicle(x: float, y: float, w: float, h: float) -> Detection:
    return Detection(Box(x, y, w, h), 0.9, label="vehicle")


def run(tracker: Tracker, frames: list[FrameResult]) -> tuple[list[PlateTrack], list[NoPlatePass]]:
    plates: list[PlateTrack] = []
    no_plate: list[NoPlatePass] = []
    for f in frames:
        out = tracker.update(f)
        plates += out.plates
        no_plate += out.no_plate
    out = tracker.flush()
    return plates + list(out.plates), no_plate + list(out.no_plate)


def approaching(
    text: str, t0: float, n: int, x0: float = 500, dt: float = 0.1
) -> list[FrameResult]:
    frames = []
    for i in range(n):
        w = 60 + 10 * i
        frames.append(FrameResult(t0 + i * dt, (obs(x0 - 3 * i, 300 + 12 * i, w, w / 2, text),)))
    return frames


def test_one_plate_one_track_approaching() -> None:
    plates, _ = run(Tracker(), approaching("ABC123", 0.0, 12))
    assert len(plates) == 1
    (track,) = plates
    assert len(track.points) == 12
    assert track.direction == "approaching"
    assert track.first_seen_s == 0.0 and track.last_seen_s == pytest.approx(1.1)


def test_missed_frames_within_gap_keep_one_track() -> None:
    frames = approaching("ABC123", 0.0, 12)
    kept = [f for i, f in enumerate(frames) if i not in (4, 5, 6)]  # 0.4 s hole < max_gap_s
    plates, _ = run(Tracker(TrackerSettings(max_gap_s=0.5)), kept)
    assert len(plates) == 1 and len(plates[0].points) == 9


def test_gap_longer_than_max_splits_into_two() -> None:
    a = approaching("ABC123", 0.0, 5)
    b = approaching("ABC123", 3.0, 5)
    plates, _ = run(Tracker(TrackerSettings(max_gap_s=1.0)), a + b)
    assert len(plates) == 2


def test_track_finishes_on_frame_time_not_flush() -> None:
    tracker = Tracker(TrackerSettings(max_gap_s=0.5))
    for f in approaching("ABC123", 0.0, 4):
        assert tracker.update(f).plates == ()
    assert tracker.update(FrameResult(0.7, ())).plates == ()  # 0.4 s since last sighting
    out = tracker.update(FrameResult(0.9, ()))
    assert len(out.plates) == 1


def test_two_plates_side_by_side_stay_apart() -> None:
    frames = []
    for i in range(8):
        t = i * 0.1
        frames.append(
            FrameResult(
                t, (obs(100 + 5 * i, 400, text="LEFT11"), obs(700 - 5 * i, 400, text="RGHT22"))
            )
        )
    plates, _ = run(Tracker(), frames)
    assert len(plates) == 2
    for track in plates:
        texts = {p.observation.ocr.text for p in track.points}
        assert len(texts) == 1 and len(track.points) == 8


def test_text_breaks_a_geometric_tie() -> None:
    # two plates overlap heavily; the one that reads like the track keeps it
    t = Tracker(TrackerSettings(max_centre_jump=3.0))
    t.update(FrameResult(0.0, (obs(100, 100, text="AAA111"),)))
    t.update(FrameResult(0.1, (obs(104, 100, text="ZZZ999"), obs(101, 100, text="AAA111"))))
    t.update(FrameResult(0.2, (obs(102, 100, text="AAA111"),)))
    plates = list(t.flush().plates)
    main = [p for p in plates if len(p.points) >= 2]
    assert len(main) == 1
    assert {p.observation.ocr.text for p in main[0].points} == {"AAA111"}


def test_single_frame_plate_is_dropped_as_noise() -> None:
    t = Tracker(TrackerSettings(min_frames=2))
    t.update(FrameResult(0.0, (obs(10, 10),)))
    assert t.flush().plates == () and t.dropped_short == 1


def test_no_plate_vehicle_becomes_a_no_plate_pass() -> None:
    frames = [
        FrameResult(i * 0.1, (), (vehicle(300 - 5 * i, 200 + 5 * i, 200 + 10 * i, 150 + 10 * i),))
        for i in range(8)
    ]
    _, no_plate = run(Tracker(TrackerSettings(no_plate_min_frames=5)), frames)
    assert len(no_plate) == 1
    assert no_plate[0].frames == 8 and no_plate[0].direction == "approaching"


def test_vehicle_with_plate_is_not_a_no_plate_pass() -> None:
    frames = []
    for i in range(8):
        v = vehicle(300, 200 + 5 * i, 300 + 10 * i, 200 + 10 * i)
        frames.append(FrameResult(i * 0.1, (obs(400, 330 + 5 * i),), (v,)))
    plates, no_plate = run(Tracker(), frames)
    assert len(plates) == 1 and no_plate == []
    assert plates[0].points[0].vehicle_box is not None


def test_small_or_brief_vehicles_are_not_passes() -> None:
    small = [FrameResult(i * 0.1, (), (vehicle(10, 10, 50, 40),)) for i in range(10)]
    brief = [FrameResult(5 + i * 0.1, (), (vehicle(500, 300, 300, 250),)) for i in range(3)]
    _, no_plate = run(Tracker(), small + brief)
    assert no_plate == []


def test_direction_modes() -> None:
    grow = [Box(0, 0, 10 + i, 5 + i) for i in range(9)]
    assert direction_of(grow, "approach", 0.15) == "approaching"
    assert direction_of(grow[::-1], "approach", 0.15) == "receding"
    assert direction_of([Box(0, 0, 10, 5)] * 9, "approach", 0.15) == "unknown"
    right = [Box(10 * i, 0, 20, 10) for i in range(9)]
    assert direction_of(right, "lateral", 0.15) == "right"
    assert direction_of(right[::-1], "lateral", 0.15) == "left"


def test_best_frame_is_the_sharpest_largest_and_kept_with_the_image() -> None:
    t = Tracker()
    blurry = np.full((40, 80, 3), 128, np.uint8)
    images = [np.full((10, 10, 3), i, np.uint8) for i in range(3)]
    t.update(FrameResult(0.0, (obs(100, 100, crop=blurry),)), images[0])
    t.update(FrameResult(0.1, (obs(102, 102, w=90, h=45),)), images[1])
    t.update(FrameResult(0.2, (obs(104, 104, crop=blurry),)), images[2])
    (track,) = t.flush().plates
    assert track.best_index == 1
    assert track.best_frame is images[1]


def test_quality_and_similarity_helpers() -> None:
    sharp = obs(0, 0)
    flat = obs(0, 0, crop=np.full((40, 80, 3), 90, np.uint8))
    assert observation_quality(sharp) > observation_quality(flat)
    assert sharpness(np.zeros((2, 2, 3), np.uint8)) == 0.0
    assert text_similarity("ABC123", "ABC123") == 1.0
    assert text_similarity("ABC123", "ABC12?") < text_similarity("ABC123", "ABC124") + 0.2
    assert text_similarity("", "ABC") == 0.0


def test_time_going_backwards_flushes() -> None:
    t = Tracker()
    for f in approaching("ABC123", 10.0, 3):
        t.update(f)
    out = t.update(FrameResult(1.0, (obs(10, 10),)))
    assert len(out.plates) == 1


def test_active_track_cap() -> None:
    t = Tracker(TrackerSettings(max_active_tracks=5, min_frames=1))
    t.update(FrameResult(0.0, tuple(obs(200 * i, 0, text=f"P{i}") for i in range(20))))
    assert t.active == 5


def test_without_vehicle_frames_no_plate_passes_hold_no_picture_and_plates_still_do() -> None:
    image = np.zeros((10, 10, 3), np.uint8)
    lone = [vehicle(300 - 5 * i, 200 + 5 * i, 200 + 10 * i, 150 + 10 * i) for i in range(8)]
    for keep in (True, False):
        t = Tracker(TrackerSettings(no_plate_min_frames=5), vehicle_frames=keep)
        for i, v in enumerate(lone):
            t.update(FrameResult(i * 0.1, (obs(900, 600 + i),), (v,)), image)
        out = t.flush()
        (no_plate,) = out.no_plate
        assert (no_plate.best_frame is image) is keep
        assert no_plate.best_frame_s == pytest.approx(0.7)  # the largest box's moment, both ways
        assert out.plates[0].best_frame is image
