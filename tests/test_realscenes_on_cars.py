"""The on-cars set's paste: a crop as wide as the plate's box, centred, its aspect kept."""

from __future__ import annotations

import numpy as np

from training.realscenes.on_cars import pasted


def test_a_crop_covers_the_plate_as_wide_as_its_box_and_centred_on_it() -> None:
    photo = np.zeros((100, 200, 3), np.uint8)
    crop = np.full((40, 80, 3), 255, np.uint8)  # a 2:1 plate
    box = pasted(photo, crop, (60.0, 45.0, 40.0, 10.0))  # a 4:1 plate's box
    assert box == (60.0, 40.0, 40.0, 20.0)
    assert (photo[40:60, 60:100] == 255).all()
    assert photo.sum() == 255 * 3 * 40 * 20  # nothing else touched


def test_a_crop_that_would_leave_the_photo_is_not_pasted() -> None:
    photo = np.zeros((100, 200, 3), np.uint8)
    crop = np.full((40, 80, 3), 255, np.uint8)
    assert pasted(photo, crop, (170.0, 2.0, 40.0, 10.0)) is None
    assert pasted(photo, crop, (10.0, 0.0, 40.0, 10.0)) is None  # taller than the box, off the top
    assert photo.sum() == 0
