"""The committed plate map (PP-OCRv4's DB detector fine-tuned for plates) on held-out frames."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from inference.engine import PLATE_MAP_MODEL, PLATE_MAP_SETTINGS
from inference.records import Box
from inference.textlines import TextLineFinder

MODELS = Path(__file__).resolve().parents[1] / "inference" / "models"
DATA = Path(__file__).resolve().parent / "data" / "detector"
FRAMES = json.loads((DATA / "frames.json").read_text())


@pytest.fixture(scope="module")
def plate_map() -> Iterator[TextLineFinder]:
    with TextLineFinder.load(MODELS, 1, PLATE_MAP_SETTINGS, PLATE_MAP_MODEL) as m:
        yield m


def _rgb(name: str) -> np.ndarray:
    bgr = cv2.imread(str(DATA / name), cv2.IMREAD_COLOR)
    assert bgr is not None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def test_the_manifest_says_grey_and_the_input_is_the_detectors(
    plate_map: TextLineFinder,
) -> None:
    assert plate_map.input_hw == (384, 640)
    assert plate_map._grey


# Plates the committed map does not box at IoU >= 0.5 on its own, with why. The engine reads the
# detector's box of each (the map is a second opinion), so these are recorded, not excused: the
# test fails if the map gets worse on any other plate.
MAP_MISSES = {
    # 1080p dashcam frame: two plates about 70 px wide, 23 px in the map's input. One is boxed
    # half (its right part, IoU 0.38), the other not at all.
    "romanian-lp-robertlucian-00077.jpg": {0, 1},
}


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_marks_the_plates_of_held_out_frames(plate_map: TextLineFinder, name: str) -> None:
    found = plate_map.find(_rgb(name))
    for i, (x, y, w, h) in enumerate(FRAMES[name]["plates"]):
        if i in MAP_MISSES.get(name, set()):
            continue
        truth = Box(x, y, w, h)
        best = max((ln.box.iou(truth) for ln in found), default=0.0)
        assert best >= 0.5, (truth, [ln.box for ln in found])
    assert len(found) <= len(FRAMES[name]["plates"]) + 1


def test_a_plain_scene_has_no_plate(plate_map: TextLineFinder) -> None:
    rng = np.random.default_rng(3)
    scene = cv2.GaussianBlur(rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8), (9, 9), 0)
    assert plate_map.find(scene) == []
