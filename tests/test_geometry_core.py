"""Pure geometry: letterbox mapping, peak finding, CenterNet decode, NMS, rectification."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.geometry import (
    crop_box,
    decode_centernet,
    expand_box,
    iou_matrix,
    letterbox,
    level_crop,
    nms,
    peaks,
    quad_is_plausible,
    rectify,
    roll_degrees,
    suppress_contained_centres,
)
from tests.kit.turned import turned_bar


def test_letterbox_places_top_left_and_maps_back() -> None:
    frame = np.full((720, 1280), 200, np.uint8)
    out, lb = letterbox(frame, (384, 640))
    assert out.shape == (384, 640)
    assert lb.scale == pytest.approx(0.5)
    assert out[:360].min() == 200 and out[360:].max() == 0  # padding below, none at the top
    back = lb.boxes_to_frame(np.array([[10, 20, 30, 8]]))
    np.testing.assert_allclose(back, [[20, 40, 60, 16]])


def test_letterbox_tall_frame_pads_right_and_clips_boxes() -> None:
    frame = np.zeros((1000, 500, 3), np.uint8)
    out, lb = letterbox(frame, (384, 640))
    assert out.shape == (384, 640, 3)
    assert lb.scale == pytest.approx(0.384)
    back = lb.boxes_to_frame(np.array([[180.0, 370.0, 40.0, 40.0]]))  # runs past the frame
    x, y, w, h = back[0]
    assert x + w <= 500 + 1e-9 and y + h <= 1000 + 1e-9


def test_peaks_keeps_local_maxima_once_even_on_plateaus() -> None:
    hm = np.zeros((10, 12), np.float32)
    hm[2, 3] = 0.9
    hm[2, 4] = 0.5  # neighbour, not a peak
    hm[7, 8] = hm[7, 9] = 0.6  # a plateau of two equal cells: one peak
    hm[5, 0] = 0.1  # below threshold
    rows, cols, scores = peaks(hm, 0.3, 10)
    assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == [(2, 3), (7, 8)]
    np.testing.assert_allclose(scores, [0.9, 0.6])
    rows, _, _ = peaks(hm, 0.3, 1)
    assert len(rows) == 1


def test_decode_inverts_the_training_encoding() -> None:
    stride = 4
    gh, gw = 20, 30
    hm = np.zeros((gh, gw), np.float32)
    off = np.zeros((gh, gw, 2), np.float32)
    size = np.zeros((gh, gw, 2), np.float32)
    corners = np.zeros((gh, gw, 8), np.float32)
    # A plate centred at (50.0, 30.0), 40 x 10 px, slightly rotated outline.
    cx, cy, w, h = 50.0, 30.0, 40.0, 10.0
    col, row = int(cx / stride), int(cy / stride)
    hm[row, col] = 0.8
    off[row, col] = (cx / stride - col, cy / stride - row)
    size[row, col] = (np.log(w / stride), np.log(h / stride))
    rel = np.array([[-0.5, -0.45], [0.5, -0.5], [0.5, 0.45], [-0.5, 0.5]])
    corners[row, col] = rel.reshape(8)
    d = decode_centernet(hm, off, size, stride, 0.3, 10, corners)
    np.testing.assert_allclose(d.boxes, [[30.0, 25.0, 40.0, 10.0]], atol=1e-5)
    np.testing.assert_allclose(d.scores, [0.8], atol=1e-6)
    assert d.corners is not None
    np.testing.assert_allclose(d.corners[0], rel * [w, h] + [cx, cy], atol=1e-5)


def test_nms_suppresses_overlaps_but_keeps_separate_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 10, 10], [0, 0, 10, 10]], float)
    scores = np.array([0.5, 0.9, 0.4, 0.1])
    keep = nms(boxes, scores, 0.5)
    assert keep.tolist() == [1, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
    with pytest.raises(ValueError):
        nms(boxes, scores[:2], 0.5)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 100), st.floats(0, 100), st.floats(1, 50), st.floats(1, 50),
            st.floats(0, 1),
        ),
        min_size=1,
        max_size=12,
    ),
    st.floats(0.1, 0.9),
)
def test_nms_properties(rows: list[tuple[float, ...]], thr: float) -> None:
    arr = np.array(rows)
    boxes, scores = arr[:, :4], arr[:, 4]
    keep = nms(boxes, scores, thr)
    assert len(set(keep.tolist())) == len(keep) >= 1
    assert scores[keep[0]] == scores.max()
    kept = boxes[keep]
    ious = iou_matrix(kept, kept)
    np.fill_diagonal(ious, 0)
    assert (ious <= thr + 1e-9).all()
    # Every dropped box overlaps a kept one with a score at least as high.
    for i in set(range(len(boxes))) - set(keep.tolist()):
        over = iou_matrix(boxes[i : i + 1], kept)[0] > thr
        assert over.any() and (scores[keep][over] >= scores[i]).any()


def test_iou_matrix_matches_box_record() -> None:
    from inference.records import Box

    a, b = Box(0, 0, 10, 10), Box(5, 5, 10, 10)
    m = iou_matrix(np.array([[0, 0, 10, 10]]), np.array([[5, 5, 10, 10]]))
    assert m[0, 0] == pytest.approx(a.iou(b))


def test_quad_plausibility() -> None:
    box = np.array([100.0, 50.0, 80.0, 20.0])
    good = np.array([[100, 52], [180, 50], [179, 70], [101, 69]], float)
    assert quad_is_plausible(good, box)
    assert not quad_is_plausible(good[[0, 3, 2, 1]], box)  # anticlockwise
    assert not quad_is_plausible(good[[0, 2, 1, 3]], box)  # self-crossing
    assert not quad_is_plausible(good + np.array([200, 0]), box)  # far from the box
    assert not quad_is_plausible(np.full((4, 2), np.nan), box)
    sliver = np.array([[100, 59], [180, 59], [180, 61], [100, 61]], float)
    assert not quad_is_plausible(sliver, box)


def test_rectify_flattens_a_perspective_plate() -> None:
    # Draw a flat "plate" (black bar on white), warp it into a frame with perspective, and check
    # rectify() gets the bar back horizontal, at the plate's own resolution.
    plate = np.full((40, 160, 3), 255, np.uint8)
    plate[15:25, 20:140] = 0
    quad = np.array([[300, 200], [460, 215], [455, 262], [302, 245]], np.float32)
    src = np.array([[0, 0], [160, 0], [160, 40], [0, 40]], np.float32)
    m = cv2.getPerspectiveTransform(src, quad)
    frame = cv2.warpPerspective(plate, m, (640, 480), borderValue=(128, 128, 128))
    out = rectify(frame, quad, margin=(0.0, 0.0))
    h, w = out.shape[:2]
    assert 150 <= w <= 170 and 40 <= h <= 50
    grey = out[..., 0].astype(float)
    dark_rows = np.nonzero(grey[:, w // 4 : 3 * w // 4].mean(1) < 100)[0]
    # The bar is one horizontal band in the middle third.
    assert dark_rows.min() > h * 0.25 and dark_rows.max() < h * 0.75
    assert dark_rows.max() - dark_rows.min() <= 0.35 * h


def test_expand_and_crop_box_stay_inside_the_frame() -> None:
    frame = np.arange(100 * 200, dtype=np.uint32).reshape(100, 200)
    b = expand_box(np.array([190.0, -5.0, 20.0, 10.0]), (0.1, 0.2), (100, 200))
    assert b[0] >= 0 and b[1] >= 0 and b[0] + b[2] <= 200 and b[1] + b[3] <= 100
    c = crop_box(frame, np.array([10.2, 20.7, 5.0, 3.0]))
    assert c.shape == (4, 6)
    assert c[0, 0] == frame[20, 10]
    assert crop_box(frame, np.array([300.0, 300.0, 5.0, 5.0])).size == 0


def test_contained_centres_suppressed() -> None:
    boxes = np.array([[0, 0, 100, 20], [40, 5, 30, 30], [200, 0, 50, 10], [90, 0, 40, 20]], float)
    scores = np.array([0.9, 0.5, 0.4, 0.8])
    # Box 1's centre (55, 20) is inside box 0; box 3's centre (110, 10) is not.
    assert suppress_contained_centres(boxes, scores).tolist() == [0, 3, 2]


@pytest.mark.parametrize("deg", [-15.0, -4.0, 0.0, 7.5, 15.0])
def test_roll_is_the_longer_sides_angle_whichever_corner_comes_first(deg: float) -> None:
    _, quad = turned_bar(deg)
    for start in range(4):
        assert roll_degrees(np.roll(quad, start, axis=0)) == pytest.approx(deg, abs=1e-6)


@pytest.mark.parametrize("deg", [-12.0, 9.0])
def test_a_rolled_plate_is_cut_level_from_its_axis_aligned_box(deg: float) -> None:
    frame, quad = turned_bar(deg)
    (x0, y0), (x1, y1) = quad.min(axis=0), quad.max(axis=0)
    crop = level_crop(frame, np.array([x0, y0, x1 - x0, y1 - y0]), roll_degrees(quad), (0, 0))
    assert crop.shape[:2] == (40, 200)
    assert (crop[2:-2, 2:-2] > 200).all()  # all plate, nothing of the dark frame round it
    loose = level_crop(frame, np.array([x0 - 40, y0 - 40, x1 - x0 + 80, y1 - y0 + 80]), 3.0,
                       (0, 0))
    assert loose.shape[0] > 40  # a loose box gives a loose cut, never an error
