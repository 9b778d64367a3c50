"""The detector's validation scenes: held out of its training split, no near-twins across."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cv2")
from training.detector.data import (
    GAP_S,
    OPENIMAGES,
    ROMANIAN,
    VAL_FRACTION_RO,
    Scene,
    split_validation,
)


def _scene(key: str, source: str, video: str = "", t: float = 0.0) -> Scene:
    none = np.zeros((0, 4), np.float32)
    return Scene(key, source, Path(key), 1280, 720, none, none, source == OPENIMAGES, video, t)


def test_the_validation_block_ends_each_video_with_a_gap_before_it() -> None:
    frames = [_scene(f"{ROMANIAN}/{v}-{t}", ROMANIAN, v, float(t))
              for v in ("a", "b") for t in range(200)]
    fit, val = split_validation(frames)
    assert {s.key for s in fit}.isdisjoint(s.key for s in val)
    for v in ("a", "b"):
        first_val = min(s.time_s for s in val if s.video == v)
        last_fit = max(s.time_s for s in fit if s.video == v)
        assert first_val >= 199 * (1 - VAL_FRACTION_RO)
        assert first_val - last_fit > GAP_S  # no near-twin of a validation frame is trained on
    assert len(fit) + len(val) < len(frames)  # the gap's frames are in neither


def test_open_images_validation_is_a_fixed_share_by_name() -> None:
    photos = [_scene(f"{OPENIMAGES}/img-{i}.jpg", OPENIMAGES) for i in range(2000)]
    fit, val = split_validation(photos)
    assert len(fit) + len(val) == len(photos)
    assert 0.12 < len(val) / len(photos) < 0.18
    assert split_validation(list(reversed(photos)))[1] == list(reversed(val))
