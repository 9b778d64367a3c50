"""Paste plates into real training crops, with perspective: rendered synthetic plates (US, EU,
BR) and, with ``real_share``, real plate photos from the crop sets (their train split only).

This adds plate styles the two real scene sets lack (US above all), many more distant small
plates, and exact corners for the corner head (a real crop is the plate edge to edge, so its
corners are the image's). Plates go onto the lower part of labelled vehicles when the crop has
some, else anywhere not covering a real plate. With ``decoy_share``, that share of the crops
also gets one block of lettering that is not a plate (``training.detector.decoys``), unlabelled.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

from training.detector.decoys import render_decoy
from training.synth import render_plate

POOL = 600
REGIONS = ("us", "us", "us", "eu", "eu", "br")
TWO_ROW_STYLES = ("eu2", "mercosur2")  # US first: no real US scenes in the training sets
MIN_W, MAX_W = 7.0, 200.0
DECOY_MIN_W, DECOY_MAX_W = 12.0, 150.0


def real_plate_crops(data: Path) -> list[Path]:
    """Real plate photos for pasting: US and Brazilian crops of the train split (by plate text,
    as the reader's), and the European crops (no text; the reader uses them for region only)."""
    from training.recognizer.splits import split_of

    out = []
    for name in ("us-plate-photos", "openalpr-traindetector-br-crops",
                 "openalpr-traindetector-eu-crops"):
        for line in (data / name / "labels.jsonl").read_text().splitlines():
            r = json.loads(line)
            text = r.get("plate_text")
            if text is None and name != "openalpr-traindetector-eu-crops":
                continue
            if text is not None and split_of(text) != "train":
                continue
            out.append(data / name / r["image"])
    return out


class SynthPaster:
    """Callable paste hook for :func:`training.detector.sampler.sample`."""

    def __init__(
        self, seed: int = 0, pool: int = POOL, real: list[Path] | None = None,
        real_share: float = 0.0, two_row_share: float = 0.0, decoy_share: float = 0.0,
    ) -> None:
        self._rng = np.random.default_rng(seed)
        self._two_row_share = two_row_share
        self._pool = [self._render() for _ in range(pool)]
        self._decoy_share = decoy_share
        self._decoys = [render_decoy(self._rng) for _ in range(pool // 2 if decoy_share else 0)]
        self.rendered = pool
        self._real = real or []
        self._real_share = real_share if self._real else 0.0
        self._real_cache: dict[int, np.ndarray] = {}

    def _render(self) -> np.ndarray:
        if self._rng.random() < self._two_row_share:
            # Square European and Mercosur motorcycle plates: 2.5 % of the renders otherwise
            # (the region mix and each region's style weights), and the detector missed them.
            style = str(self._rng.choice(TWO_ROW_STYLES))
            plate = render_plate(self._rng, style=style)
            return cv2.cvtColor(plate.image, cv2.COLOR_RGB2GRAY)
        region = str(self._rng.choice(REGIONS))
        plate = render_plate(self._rng, region=region)
        return cv2.cvtColor(plate.image, cv2.COLOR_RGB2GRAY)

    def _real_plate(self, rng: np.random.Generator) -> np.ndarray | None:
        i = int(rng.integers(len(self._real)))
        if i not in self._real_cache:
            img = cv2.imread(str(self._real[i]), cv2.IMREAD_GRAYSCALE)
            if img is None or min(img.shape) < 8:
                return None
            self._real_cache[i] = img
        return self._real_cache[i]

    def _plate(self, rng: np.random.Generator) -> np.ndarray:
        if self._real_share and rng.random() < self._real_share:
            real = self._real_plate(rng)
            if real is not None:
                return real
        if rng.random() < 0.1:  # keep the pool fresh over a long run
            i = int(rng.integers(len(self._pool)))
            self._pool[i] = self._render()
            self.rendered += 1
        return self._pool[int(rng.integers(len(self._pool)))]

    def __call__(
        self,
        crop: np.ndarray,
        rng: np.random.Generator,
        vehicles: np.ndarray,
        plates: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        size = crop.shape[0]
        out = crop.astype(np.float32)
        boxes: list[np.ndarray] = []
        quads: list[np.ndarray] = []
        taken = [b for b in plates]
        for _ in range(1 if rng.random() < 0.7 else 2):
            img = self._plate(rng)
            ph, pw = img.shape
            on_vehicle = len(vehicles) > 0 and rng.random() < 0.6
            if on_vehicle:
                v = vehicles[int(rng.integers(len(vehicles)))]
                w = float(np.clip(v[2] * rng.uniform(0.15, 0.3), MIN_W, MAX_W))
                cx = v[0] + v[2] * (0.5 + rng.uniform(-0.15, 0.15))
                cy = v[1] + v[3] * rng.uniform(0.6, 0.85)
            else:
                w = math.exp(rng.uniform(math.log(MIN_W), math.log(MAX_W)))
                cx, cy = rng.uniform(0, size), rng.uniform(0, size)
            h = w * ph / pw * rng.uniform(0.85, 1.15)
            quad = _quad(rng, cx, cy, w, h)
            box = _placed(quad, size, taken)
            if box is None:
                continue
            out = _warp_in(out, img, np.ones((ph, pw), np.float32), quad, rng)
            boxes.append(box)
            quads.append(quad)
            taken.append(box)
        if self._decoys and rng.random() < self._decoy_share:
            out = self._decoy(out, rng, vehicles, taken)
        if not boxes:
            return np.clip(out, 0, 255).astype(np.uint8), *_no_plates()
        return (
            np.clip(out, 0, 255).astype(np.uint8),
            np.stack(boxes),
            np.stack(quads).astype(np.float32),
        )


    def _decoy(
        self,
        out: np.ndarray,
        rng: np.random.Generator,
        vehicles: np.ndarray,
        taken: list[np.ndarray],
    ) -> np.ndarray:
        """One decoy (training.detector.decoys) pasted with no label, clear of every plate."""
        if rng.random() < 0.1:
            self._decoys[int(rng.integers(len(self._decoys)))] = render_decoy(self._rng)
        img, alpha = self._decoys[int(rng.integers(len(self._decoys)))]
        size = out.shape[0]
        ph, pw = img.shape
        w = math.exp(rng.uniform(math.log(DECOY_MIN_W), math.log(DECOY_MAX_W)))
        if len(vehicles) and rng.random() < 0.5:  # a van's side, a bus's back, a sticker
            v = vehicles[int(rng.integers(len(vehicles)))]
            w = float(np.clip(w, DECOY_MIN_W, max(DECOY_MIN_W, v[2] * 0.6)))
            cx, cy = v[0] + v[2] * rng.uniform(0.2, 0.8), v[1] + v[3] * rng.uniform(0.15, 0.7)
        else:
            cx, cy = rng.uniform(0, size), rng.uniform(0, size)
        quad = _quad(rng, cx, cy, w, w * ph / pw)
        if _placed(quad, size, taken) is None:
            return out
        return _warp_in(out, img, alpha, quad, rng)


def _placed(quad: np.ndarray, size: int, taken: list[np.ndarray]) -> np.ndarray | None:
    """The box round ``quad`` when it lies inside the crop and clear of every ``taken`` box."""
    lo, hi = quad.min(0), quad.max(0)
    if (lo < 1).any() or (hi > size - 1).any():
        return None
    box = np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]], np.float32)
    return None if any(_overlaps(box, t) for t in taken) else box


def _no_plates() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((0, 4), np.float32), np.zeros((0, 4, 2), np.float32)


def _warp_in(
    out: np.ndarray, img: np.ndarray, alpha: np.ndarray, quad: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """``img`` blended into ``out`` (float32) through ``alpha``, its corners on ``quad``."""
    size = out.shape[0]
    ph, pw = img.shape
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
    m = cv2.getPerspectiveTransform(src, quad.astype(np.float32))
    warped = cv2.warpPerspective(img.astype(np.float32), m, (size, size), flags=cv2.INTER_AREA)
    a = cv2.warpPerspective(alpha, m, (size, size), flags=cv2.INTER_LINEAR)
    gain = rng.uniform(0.45, 1.1)
    return out * (1 - a) + warped * gain * a


def _quad(rng: np.random.Generator, cx: float, cy: float, w: float, h: float) -> np.ndarray:
    """A plate outline seen off-axis: yaw shortens one side, plus roll and a little jitter."""
    yaw = rng.uniform(-0.35, 0.35)
    left, right = 1.0 + yaw / 2, 1.0 - yaw / 2
    q = np.array(
        [[-w / 2, -h / 2 * left], [w / 2, -h / 2 * right], [w / 2, h / 2 * right],
         [-w / 2, h / 2 * left]],
        np.float64,
    )
    q[:, 0] *= math.cos(yaw)
    q += rng.normal(0, 0.03, q.shape) * np.array([w, h])
    a = math.radians(rng.uniform(-8, 8))
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return q @ rot.T + np.array([cx, cy])


def _overlaps(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(
        a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]
    )
