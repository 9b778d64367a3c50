"""Tracker + vote on the real detector's boxes over the bundled sample footage.

The plate reader is simulated from the manifest (the true text with characters corrupted at
random, worse for small plates), so this checks the tracking and the vote, not the OCR: every
vehicle must come out as exactly one pass, with the right text and direction.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from inference.records import Box, FrameResult, OcrResult, PlateObservation
from inference.tracker import Tracker, TrackerSettings
from inference.vote import Deduplicator, vote_track

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "firmware" / "sample"
MODELS = ROOT / "inference" / "models"
ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"

pytestmark = pytest.mark.slow


def _noisy_read(text: str, plate_w: float, rng: np.random.Generator) -> OcrResult:
    p_err = 0.35 if plate_w < 70 else 0.12 if plate_w < 110 else 0.04
    chars, confs = [], []
    for ch in text:
        if rng.random() < p_err:
            chars.append(str(rng.choice(list(ALPHABET))))
            confs.append(float(rng.uniform(0.3, 0.7)))
        else:
            chars.append(ch)
            confs.append(float(rng.uniform(0.7, 0.99)))
    if plate_w < 70 and rng.random() < 0.3:
        chars = chars[1:]  # a clipped distant read
        confs = confs[1:]
    out = "".join(chars)
    return OcrResult(
        out, float(np.mean(confs)), tuple(confs), (), region="us-ca", region_confidence=0.7
    )


def test_each_vehicle_is_one_pass_with_the_right_text() -> None:
    if not (MODELS / "detector.tflite").exists():
        pytest.skip("detector model not built")
    from inference.detector import PlateDetector

    manifest = json.loads((SAMPLE / "footage.json").read_text())
    truth: dict[int, tuple[str, Box]] = {}
    for v in manifest["vehicles"]:
        for k, b in enumerate(v["plate_boxes"]):
            truth[v["first_frame"] + k] = (v["text"], Box(*b))
    detector = PlateDetector.load(MODELS)
    rng = np.random.default_rng(7)
    tracker = Tracker(TrackerSettings())
    dedup = Deduplicator(10.0)
    reads = []
    cap = cv2.VideoCapture(str(SAMPLE / manifest["file"]))
    i = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        plates = []
        for det in detector.detect(rgb):
            if det.label != "plate":
                continue
            text, box = truth.get(i, ("", Box(0, 0, 1, 1)))
            if det.box.iou(box) >= 0.3:
                ocr = _noisy_read(text, det.box.w, rng)
            else:
                ocr = OcrResult("", 0.0, (), ())
            crop = rgb[
                int(det.box.y) : int(det.box.y + det.box.h),
                int(det.box.x) : int(det.box.x + det.box.w),
            ]
            plates.append(PlateObservation(det, ocr, crop))
        out = tracker.update(FrameResult(i / manifest["fps"], tuple(plates)))
        reads += [vote_track(t) for t in out.plates]
        i += 1
    reads += [vote_track(t) for t in tracker.flush().plates]
    admitted = [r for r in reads if r.text and dedup.admit(r)]
    got = [(r.text, r.direction) for r in admitted]
    want = [(v["text"], v["direction"]) for v in manifest["vehicles"]]
    assert got == want
