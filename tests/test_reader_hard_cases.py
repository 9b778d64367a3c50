"""The reader's hard-case augmentations (training/recognizer/hard_cases.py), pure."""

from __future__ import annotations

import numpy as np

from training.recognizer.hard_cases import ROLL_DEG, glare, night_ir, rolled, rolled_plate


def _plate() -> np.ndarray:
    img = np.full((40, 160, 3), 230, np.uint8)
    img[10:30, 20:140] = 30  # a dark bar standing for the registration
    return img


def test_a_rolled_plate_lies_inside_the_upright_box_round_it() -> None:
    rng = np.random.default_rng(0)
    scene = np.zeros((200, 400, 3), np.uint8)
    scene[90:110, 150:250] = 255
    for _ in range(20):
        out, (x, y, w, h) = rolled(rng, scene, [150, 90, 100, 20])
        assert out.shape == scene.shape
        ys, xs = np.nonzero(out[:, :, 0] > 128)
        assert xs.min() >= x - 1 and xs.max() <= x + w + 1
        assert ys.min() >= y - 1 and ys.max() <= y + h + 1
        # turned 3-12 degrees: the upright box grows taller than the level plate
        lo, hi = ROLL_DEG
        assert 20 + 100 * np.sin(np.radians(lo)) - 2 <= h <= 20 + 100 * np.sin(np.radians(hi)) + 2


def test_a_plate_crop_is_padded_before_it_is_turned() -> None:
    img, (x, y, w, h) = rolled_plate(np.random.default_rng(1), _plate())
    assert img.shape[0] > 40 and img.shape[1] > 160
    assert x >= 0 and y >= 0 and x + w <= img.shape[1] and y + h <= img.shape[0]


def test_night_is_grey_and_keeps_the_dark_characters_dark() -> None:
    rng = np.random.default_rng(2)
    for _ in range(10):
        out = night_ir(rng, _plate())
        assert out.shape == (40, 160, 3) and out.dtype == np.uint8
        assert (out[:, :, 0] == out[:, :, 1]).all() and (out[:, :, 1] == out[:, :, 2]).all()
        assert out[15:25, 40:120].mean() < out[:5].mean()


def test_glare_only_brightens() -> None:
    img = _plate()
    out = glare(np.random.default_rng(3), img)
    assert out.shape == img.shape and (out >= img).all() and (out > img).any()
