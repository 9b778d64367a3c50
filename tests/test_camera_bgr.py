"""BGR to RGB for a decoded frame: in place, in blocks of rows; views are copied."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.camera.base import bgr_to_rgb


@pytest.mark.parametrize("shape", [(720, 1280, 3), (1080, 1920, 3), (7, 5, 3), (1, 1, 3)])
def test_a_fresh_frame_is_converted_in_place(shape: tuple[int, int, int]) -> None:
    bgr = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    expected = bgr[:, :, ::-1].copy()
    rgb = bgr_to_rgb(bgr)
    assert rgb is bgr  # no second frame-sized buffer
    assert np.array_equal(rgb, expected)


def test_a_view_or_read_only_array_is_copied_and_left_as_it_was() -> None:
    frame = np.random.default_rng(2).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    view = frame[:, ::2]
    before = view.copy()
    rgb = bgr_to_rgb(view)
    assert np.array_equal(rgb, before[:, :, ::-1]) and np.array_equal(view, before)
    frozen = frame.copy()
    frozen.flags.writeable = False
    assert np.array_equal(bgr_to_rgb(frozen), frame[:, :, ::-1])
