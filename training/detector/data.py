"""Scenes for the detector: loading, the held-out split, and the source list for the manifest.

Split rules (the test split is never trained on):

* romanian-lp-robertlucian: its own ``train``/``valid`` split interleaves frames of the same four
  dashcam videos one second apart, so ``valid`` frames have near-twins in ``train``. We split by
  time instead: per video, the last 20 % of its timeline is test, and training frames within
  ``GAP_S`` seconds before that block are dropped, so no test frame has a training twin.
* openimages-plates-roboflow-f8vsn: a deterministic 15 % by SHA-1 of the image name is test.

Validation (``split_validation``, ``train.py --hold-out-val``): the same two rules inside the
training split, so that a detector change can be chosen on scenes the detector was not trained
on (the real-scene ``dev`` part is the training split): per Romanian video the last 15 % of its
training timeline, with the training frames within ``GAP_S`` before it dropped; 15 % of the
Open Images training scenes by other bytes of the same digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

DATASETS = Path(
    os.environ.get("VIGIL_DATASETS") or Path(__file__).resolve().parents[3] / "shared" / "datasets"
)
ROMANIAN = "romanian-lp-robertlucian"
OPENIMAGES = "openimages-plates-roboflow-f8vsn"
TEST_FRACTION_RO = 0.20
GAP_S = 20.0
TEST_PERCENT_OI = 15
VAL_FRACTION_RO = 0.15
VAL_PERCENT_OI = 15


@dataclass(frozen=True)
class Scene:
    """One labelled frame. Boxes are ``[x, y, w, h]`` in pixels of ``path``'s full image."""

    key: str
    source: str  # dataset name
    path: Path
    width: int
    height: int
    plates: np.ndarray  # (N, 4) float32
    vehicles: np.ndarray  # (M, 4) float32
    has_vehicle_labels: bool
    video: str = ""
    time_s: float = 0.0


def _arr(boxes: list[list[float]] | None) -> np.ndarray:
    if not boxes:
        return np.zeros((0, 4), np.float32)
    return np.asarray(boxes, np.float32).reshape(-1, 4)


def load_romanian(root: Path = DATASETS) -> list[Scene]:
    out = []
    for line in (root / ROMANIAN / "labels.jsonl").read_text().splitlines():
        r = json.loads(line)
        m = re.search(r"([^/]+)#t=([0-9.]+)\.jpg$", r["source_path"])
        if m is None:
            raise ValueError(f"unexpected source_path {r['source_path']!r}")
        boxes = r.get("boxes") or ([r["box"]] if r.get("box") else [])
        out.append(
            Scene(
                key=f"{ROMANIAN}/{r['image']}",
                source=ROMANIAN,
                path=root / ROMANIAN / r["image"],
                width=int(r["width"]),
                height=int(r["height"]),
                plates=_arr(boxes),
                vehicles=_arr(None),
                has_vehicle_labels=False,
                video=m.group(1),
                time_s=float(m.group(2)),
            )
        )
    return out


def load_openimages(root: Path = DATASETS) -> list[Scene]:
    out = []
    for line in (root / OPENIMAGES / "labels.jsonl").read_text().splitlines():
        r = json.loads(line)
        boxes = r.get("boxes") or ([r["box"]] if r.get("box") else [])
        out.append(
            Scene(
                key=f"{OPENIMAGES}/{r['image']}",
                source=OPENIMAGES,
                path=root / OPENIMAGES / r["image"],
                width=int(r["width"]),
                height=int(r["height"]),
                plates=_arr(boxes),
                vehicles=_arr(r.get("vehicle_boxes")),
                has_vehicle_labels=True,
            )
        )
    return out


def split_romanian(
    scenes: list[Scene], fraction: float = TEST_FRACTION_RO
) -> tuple[list[Scene], list[Scene]]:
    """``(before, after)``: per video, the last ``fraction`` of its timeline is ``after``; frames
    within ``GAP_S`` before that block are in neither."""
    by_video: dict[str, list[Scene]] = defaultdict(list)
    for s in scenes:
        by_video[s.video].append(s)
    before, after = [], []
    for video in sorted(by_video):
        items = sorted(by_video[video], key=lambda s: s.time_s)
        t0, t1 = items[0].time_s, items[-1].time_s
        cut = t1 - fraction * (t1 - t0)
        for s in items:
            if s.time_s >= cut:
                after.append(s)
            elif s.time_s < cut - GAP_S:
                before.append(s)
    return before, after


def is_test_openimages(scene: Scene) -> bool:
    digest = hashlib.sha1(scene.key.encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < TEST_PERCENT_OI


def is_val_openimages(scene: Scene) -> bool:
    """A training scene of Open Images held out for validation (independent of the test rule)."""
    digest = hashlib.sha1(scene.key.encode()).digest()
    return int.from_bytes(digest[4:8], "big") % 100 < VAL_PERCENT_OI


def split_validation(train: list[Scene]) -> tuple[list[Scene], list[Scene]]:
    """``train`` (the training split of :func:`splits`) as ``(fit, val)``: the scenes to train on
    and those held out to choose by. Romanian frames just before the validation block, near-twins
    of it, are in neither."""
    others = [s for s in train if s.source != ROMANIAN]
    ro_fit, ro_val = split_romanian([s for s in train if s.source == ROMANIAN], VAL_FRACTION_RO)
    fit = [s for s in others if not is_val_openimages(s)] + ro_fit
    val = [s for s in others if is_val_openimages(s)] + ro_val
    return fit, val


def splits(root: Path = DATASETS) -> tuple[list[Scene], list[Scene]]:
    """``(train, test)`` over both real sets."""
    ro_train, ro_test = split_romanian(load_romanian(root))
    oi = load_openimages(root)
    oi_train = [s for s in oi if not is_test_openimages(s)]
    oi_test = [s for s in oi if is_test_openimages(s)]
    return ro_train + oi_train, ro_test + oi_test


def read_grey(path: Path, max_width: int | None = None) -> tuple[np.ndarray, float]:
    """Grey image and the factor it was scaled by (<= 1) to fit ``max_width``."""
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise OSError(f"cannot read {path}")
    if max_width is not None and img.shape[1] > max_width:
        f = max_width / img.shape[1]
        img = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        return img, f
    return img, 1.0


def training_sources(train: list[Scene]) -> list[dict[str, object]]:
    counts: dict[str, int] = defaultdict(int)
    for s in train:
        counts[s.source] += 1
    licences = {ROMANIAN: "MIT", OPENIMAGES: "CC BY 2.0 (images), CC BY 4.0 (annotations)"}
    return [{"set": k, "licence": licences[k], "count": v} for k, v in sorted(counts.items())]
