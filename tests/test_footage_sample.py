"""The bundled sample footage agrees with its manifest (what the simulation rig relies on)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

SAMPLE = Path(__file__).resolve().parents[1] / "firmware" / "sample"
MANIFEST = json.loads((SAMPLE / "footage.json").read_text())


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(SAMPLE / MANIFEST["file"]))
    assert cap.isOpened()
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f)
    cap.release()
    return out


def test_file_is_small_and_decodes_to_the_manifest(frames: list[np.ndarray]) -> None:
    assert (SAMPLE / MANIFEST["file"]).stat().st_size < 8_000_000
    assert len(frames) == MANIFEST["frames"]
    assert {f.shape for f in frames} == {(MANIFEST["height"], MANIFEST["width"], 3)}
    assert 15 <= MANIFEST["frames"] / MANIFEST["fps"] <= 30


def test_vehicles_are_separate_passes_with_plates_in_frame() -> None:
    vehicles = MANIFEST["vehicles"]
    assert 4 <= len(vehicles) <= 6
    assert any(v["night"] for v in vehicles)
    prev_last = -1
    for v in vehicles:
        assert re.fullmatch(r"[A-Z0-9]{4,8}", v["text"])
        assert v["expected_reads"] == 1
        assert v["direction"] in ("approaching", "receding")
        n = v["last_frame"] - v["first_frame"] + 1
        assert len(v["plate_boxes"]) == n == len(v["vehicle_boxes"])
        # a gap longer than a second of empty road separates passes
        assert v["first_frame"] - prev_last > MANIFEST["fps"]
        prev_last = v["last_frame"]
        for x, y, w, h in v["plate_boxes"]:
            assert x >= 0 and y >= 0 and x + w <= MANIFEST["width"] and y + h <= MANIFEST["height"]
        widths = [b[2] for b in v["plate_boxes"]]
        assert sum(w >= 100 for w in widths) >= 5, v["text"]
        assert min(widths) < 70, "each approach should start with a small plate"
    assert prev_last < MANIFEST["frames"]
    assert len({v["text"] for v in vehicles}) == len(vehicles)


def test_plates_are_really_drawn_where_the_manifest_says(frames: list[np.ndarray]) -> None:
    for v in MANIFEST["vehicles"]:
        empty = frames[v["first_frame"] - 1]  # the empty road just before the pass
        k = len(v["plate_boxes"]) // 2
        x, y, w, h = (int(round(c)) for c in v["plate_boxes"][k])
        patch = frames[v["first_frame"] + k][y : y + h, x : x + w].astype(float)
        road = empty[y : y + h, x : x + w].astype(float)
        assert np.abs(patch - road).mean() > 15, v["text"]
        assert patch.std() > 25, v["text"]  # characters on a plate, not a flat patch


def test_licence_file_names_every_source() -> None:
    licence = (SAMPLE / "LICENSE.md").read_text()
    assert "CC BY 2.0" in licence and "MIT" in licence
    for v in MANIFEST["vehicles"]:
        image_id = v["vehicle_source"]
        assert image_id.startswith("images/train_")
    ids = re.findall(r"\| \d \| ([0-9a-f]{16}) \|", licence)
    assert len(ids) == len(MANIFEST["vehicles"])
