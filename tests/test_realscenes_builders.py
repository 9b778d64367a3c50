"""Set builders: the on-cars paste, and the closer framing of real scenes."""

from __future__ import annotations

import numpy as np

from training.realscenes.framing import framed_labels, window
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


def test_a_window_frames_the_plate_at_its_share_and_stays_inside_the_photo() -> None:
    assert window([300.0, 200.0, 100.0, 30.0], 0.5, 1280, 720) == (250, 140, 200, 150)
    assert window([0.0, 0.0, 100.0, 30.0], 0.5, 1280, 720) == (0, 0, 200, 150)  # moved inside
    assert window([0.0, 0.0, 100.0, 30.0], 0.1, 640, 480) is None  # 1000 px: too wide


def test_plates_wholly_inside_keep_their_labels_and_a_cut_plate_spoils_the_window() -> None:
    plates = [
        {"box": [300.0, 200.0, 100.0, 30.0], "text": "ABC123", "region": "us"},
        {"box": [900.0, 200.0, 100.0, 30.0], "text": "XYZ789", "region": "us"},
    ]
    labels = framed_labels(plates, (250, 140, 200, 150))
    assert labels == [{"box": [50.0, 60.0, 100.0, 30.0], "text": "ABC123", "region": "us"}]
    assert framed_labels(plates, (250, 140, 700, 150)) is None  # half of the second plate in
