"""Set builders: the on-cars paste, the closer framing of real scenes, and the true-box cuts
(with the reader-alone score that reads them)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from inference.records import Candidate, OcrResult
from training.realscenes.framing import framed_labels, window
from training.realscenes.on_cars import pasted
from training.realscenes.parts import moved_label
from training.realscenes.true_box import cut
from training.recognizer.crop_eval import folder_crops, score


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


def test_a_true_box_cut_has_the_margin_of_the_reading_issue_clipped_to_the_photo() -> None:
    # 8 % of 100 px at each side, 15 % of 20 px above and below
    assert cut([300.0, 200.0, 100.0, 20.0], 1280, 720) == (292, 197, 116, 26)
    assert cut([0.0, 710.0, 100.0, 20.0], 1280, 720) == (0, 707, 108, 13)  # clipped
    assert cut([10.0, 10.0, 6.0, 3.0], 1280, 720) is None  # nothing to read


def test_a_cut_label_is_the_plate_in_the_cut_pixels() -> None:
    plate = {"box": [300.0, 200.0, 100.0, 20.0], "text": "B123ABC", "region": "eu"}
    assert moved_label(plate, 292, 197) == {
        "box": [8.0, 3.0, 100.0, 20.0], "text": "B123ABC", "region": "eu"
    }


class _FixedReader:
    """Reads every crop as the text its top-left pixel's red value names."""

    def __init__(self, texts: dict[int, tuple[str, str | None]]) -> None:
        self.texts = texts

    def read(self, crop: np.ndarray) -> OcrResult:
        text, region = self.texts[int(crop[0, 0, 0])]
        candidates = (Candidate(text, 0.9), Candidate("B123ABD", 0.1))
        return OcrResult(text, 0.9, (0.9,) * len(text), candidates, region, 0.9)


def test_the_reader_alone_is_scored_per_region_on_a_true_box_folder(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    lines = []
    for i, (text, region) in enumerate(
        [("B123ABC", "eu"), ("B123ABD", "eu"), ("7ABC123", "us-CA"), ("X1", None)]
    ):
        img = np.zeros((20, 80, 3), np.uint8)
        img[:, :, 2] = i  # BGR on disk: the red channel carries the index
        cv2.imwrite(str(tmp_path / f"images/{i}.png"), img)
        lines.append(json.dumps({"image": f"images/{i}.png", "plates": [
            {"box": [0, 0, 80, 20], "text": text, "region": region}]}))
    lines.append(json.dumps({"image": "images/none.png", "plates": []}))  # unreadable photo
    (tmp_path / "labels.jsonl").write_text("\n".join(lines) + "\n")
    items = folder_crops(tmp_path)
    assert [(t, r) for _, t, r in items] == [
        ("B123ABC", "eu"), ("B123ABD", "eu"), ("7ABC123", "us"), ("X1", "other")
    ]
    reader = _FixedReader({0: ("B123ABC", "eu"), 1: ("B123ABC", "eu"),
                           2: ("7ABC128", "us"), 3: ("X1", None)})
    result = score(reader, items)
    assert result["eu"] == {"crops": 2, "exact": 50.0, "top10": 100.0, "region": 100.0}
    assert result["us"] == {"crops": 1, "exact": 0.0, "top10": 0.0, "region": 100.0}
    assert result["other"]["exact"] == 100.0
