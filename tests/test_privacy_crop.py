from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.errors import FrameError
from inference.privacy import (
    CUT_PLATE_HEIGHTS,
    cut_line_y,
    no_plate_overview_crop,
    overview_crop,
    plate_crop,
)
from inference.records import Box

H, W = 720, 1280


def row_coded_frame() -> np.ndarray:
    """Each pixel stores its own row number (R = row // 256, G = row % 256)."""
    rows = np.arange(H)
    f = np.zeros((H, W, 3), np.uint8)
    f[:, :, 0] = (rows // 256)[:, None]
    f[:, :, 1] = (rows % 256)[:, None]
    f[:, :, 2] = 7
    return f


FRAME = row_coded_frame()


def rows_of(crop: np.ndarray) -> np.ndarray:
    return crop[:, :, 0].astype(int) * 256 + crop[:, :, 1].astype(int)


def test_no_pixel_above_the_cut_line_survives() -> None:
    plate = Box(600, 500, 120, 60)
    vehicle = Box(400, 250, 500, 400)  # cabin from y=250 upward of the plate
    crop = overview_crop(FRAME, vehicle, plate)
    line = plate.y - CUT_PLATE_HEIGHTS * plate.h
    assert rows_of(crop).min() >= line
    assert rows_of(crop).min() == 440
    assert crop.shape == (650 - 440, 500, 3)
    assert not np.shares_memory(crop, FRAME)


@settings(max_examples=300, deadline=None)
@given(
    px=st.floats(-50, W),
    py=st.floats(-50, H),
    pw=st.floats(1, 400),
    ph=st.floats(1, 200),
    vehicle=st.one_of(
        st.none(),
        st.tuples(st.floats(-100, W), st.floats(-100, H), st.floats(1, 1500), st.floats(1, 900)),
    ),
    k=st.floats(0.0, 1.5),
)
def test_property_nothing_above_the_line(px, py, pw, ph, vehicle, k) -> None:  # type: ignore[no-untyped-def]
    plate = Box(px, py, pw, ph)
    vbox = Box(*vehicle) if vehicle is not None else None
    crop = overview_crop(FRAME, vbox, plate, k=k)
    if crop.size:
        assert rows_of(crop).min() >= py - k * ph
    pc = plate_crop(FRAME, plate, pad=0.3)
    if pc.size:
        assert rows_of(pc).min() >= py - CUT_PLATE_HEIGHTS * ph


def test_fallback_without_vehicle_box_is_a_band_around_the_plate() -> None:
    plate = Box(600, 500, 100, 50)
    crop = overview_crop(FRAME, None, plate)
    assert crop.shape[1] == 400  # 2 plate widths either side of the centre
    assert rows_of(crop).min() == 450 and rows_of(crop).max() == 649


def test_plate_at_top_gives_empty_not_uncut() -> None:
    crop = overview_crop(FRAME, Box(0, -200, 100, 50), Box(10, -100, 40, 20))
    assert crop.shape == (0, 100, 3)


def test_k_range_is_enforced() -> None:
    with pytest.raises(FrameError):
        cut_line_y(Box(0, 100, 10, 10), k=2.0)
    with pytest.raises(FrameError):
        plate_crop(FRAME, Box(0, 100, 10, 10), pad=0.9)
    with pytest.raises(FrameError):
        overview_crop(np.zeros((10,), np.uint8), None, Box(0, 0, 1, 1))


def test_plate_crop_padding_limits() -> None:
    plate = Box(600, 500, 100, 50)
    assert plate_crop(FRAME, plate, pad=0.0).shape == (50, 100, 3)
    assert plate_crop(FRAME, plate, pad=0.1).shape == (60, 120, 3)
    edge = plate_crop(FRAME, Box(-20, 700, 100, 50), pad=0.1)
    assert edge.shape == (25, 90, 3)  # clamped to the frame


@settings(max_examples=200, deadline=None)
@given(
    x=st.floats(-100, W),
    y=st.floats(-200, H),
    w=st.floats(1, 1500),
    h=st.floats(1, 900),
    keep=st.floats(0.01, 0.35),
)
def test_no_plate_crop_keeps_only_the_bottom_of_the_vehicle(x, y, w, h, keep) -> None:  # type: ignore[no-untyped-def]
    crop = no_plate_overview_crop(FRAME, Box(x, y, w, h), keep)
    if crop.size:
        assert rows_of(crop).min() >= y + (1 - keep) * h - 1e-6


def test_no_plate_crop_limits() -> None:
    crop = no_plate_overview_crop(FRAME, Box(100, 100, 400, 400))
    assert crop.shape == (140, 400, 3) and rows_of(crop).min() == 360
    with pytest.raises(FrameError):
        no_plate_overview_crop(FRAME, Box(100, 100, 400, 400), keep_fraction=0.6)
