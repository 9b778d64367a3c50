"""Random training crops at the scale the detector sees at run time, with their targets.

The detector is fully convolutional, so it trains on ``CROP`` x ``CROP`` windows of frames resized
to run-time scale (a 1280x720 frame is halved to fit 640x384; a 1920x1080 one divided by three)
and runs on the whole letterboxed frame. Scale is jittered towards small plates, the ones that
matter most. A horizontal flip is fine here (the detector does not read text).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from training.detector.data import ROMANIAN, Scene, read_grey
from training.detector.spec import STRIDE
from training.detector.targets import Targets, encode

CROP = 256
CACHE_MAX_WIDTH = 768
MIN_VISIBLE = 0.45


@dataclass(frozen=True)
class Loaded:
    scene: Scene
    image: np.ndarray  # grey, scaled by `factor` from the original
    factor: float
    plates: np.ndarray  # (N, 4) in `image` pixels
    vehicles: np.ndarray  # (M, 4)


def load_all(scenes: list[Scene]) -> list[Loaded]:
    out = []
    for s in scenes:
        img, f = read_grey(s.path, CACHE_MAX_WIDTH)
        out.append(Loaded(s, img, f, s.plates * f, s.vehicles * f))
    return out


# A paste hook adds synthetic plates to a finished crop: (crop, rng, vehicle boxes, real plate
# boxes) -> (crop, new plate boxes (K, 4), their corners (K, 4, 2)).
PasteFn = Callable[
    [np.ndarray, np.random.Generator, np.ndarray, np.ndarray],
    tuple[np.ndarray, np.ndarray, np.ndarray],
]


def _box_corners(b: np.ndarray) -> np.ndarray:
    x, y, w, h = b
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float32)


def _affine_boxes(boxes: np.ndarray, m: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned boxes after the affine ``m``, clipped to the crop; and the visible fraction."""
    if len(boxes) == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    pts = np.stack([_box_corners(b) for b in boxes])  # (N, 4, 2)
    pts = pts @ m[:, :2].T + m[:, 2]
    x0, y0 = pts[..., 0].min(1), pts[..., 1].min(1)
    x1, y1 = pts[..., 0].max(1), pts[..., 1].max(1)
    full = np.maximum(x1 - x0, 1e-3) * np.maximum(y1 - y0, 1e-3)
    cx0, cy0 = np.clip(x0, 0, size), np.clip(y0, 0, size)
    cx1, cy1 = np.clip(x1, 0, size), np.clip(y1, 0, size)
    vis = np.maximum(cx1 - cx0, 0) * np.maximum(cy1 - cy0, 0) / full
    out = np.stack([cx0, cy0, cx1 - cx0, cy1 - cy0], 1).astype(np.float32)
    return out, vis.astype(np.float32)


def _photometric(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = img.astype(np.float32) / 255.0
    if rng.random() < 0.5:
        x = x ** float(np.exp(rng.uniform(-0.6, 0.6)))
    x = (x - 0.5) * rng.uniform(0.5, 1.5) + 0.5 + rng.uniform(-0.25, 0.25)
    if rng.random() < 0.15:  # night IR look: dark surround, bright retro-reflective plates
        x = np.clip(x, 0, 1) ** rng.uniform(1.8, 3.0) * rng.uniform(1.0, 1.6)
    if rng.random() < 0.3:
        k = rng.uniform(0.4, 1.4)
        x = cv2.GaussianBlur(x, (0, 0), k)
    if rng.random() < 0.15:  # horizontal motion blur
        n = int(rng.integers(3, 8))
        x = cv2.filter2D(x, -1, np.full((1, n), 1.0 / n, np.float32))
    if rng.random() < 0.4:
        x = x + rng.normal(0, rng.uniform(0.005, 0.04), x.shape).astype(np.float32)
    x = np.clip(x, 0, 1)
    if rng.random() < 0.3:  # compression artefacts of cheap cameras
        q = int(rng.integers(30, 90))
        ok, enc = cv2.imencode(".jpg", (x * 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            x = cv2.imdecode(enc, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
    return x


@dataclass(frozen=True)
class Crop:
    """An augmented crop (float32 grey in [0, 1]) and its labels in crop pixels.

    ``plates``/``corners``: plates at least ``MIN_VISIBLE`` inside the crop (corners NaN where
    not known: real plates have boxes only); ``cut_plates``: plates partly inside but less, which
    a dense target should neither reward nor punish.
    """

    image: np.ndarray
    plates: np.ndarray  # (N, 4)
    corners: np.ndarray  # (N, 4, 2)
    cut_plates: np.ndarray  # (K, 4)
    vehicles: np.ndarray  # (M, 4)


def augment(
    item: Loaded,
    rng: np.random.Generator,
    paste: PasteFn | None = None,
    size: int = CROP,
    roll: float = 5.0,
    real_quads: bool = False,
) -> Crop:
    """One augmented ``size`` x ``size`` crop of ``item`` at run-time scale, with its labels,
    turned by up to ``roll`` degrees. ``real_quads``: real plates get the turned outline of
    their box as corners (the plate map's target), not NaN."""
    # Run-time scale of the original frame, then the cache factor undone.
    # Mostly small plates, the ones that matter most; one crop in four zooms in so that close-ups
    # (plates up to about 200 px in the model input) are seen too.
    close_up = rng.random() < 0.25
    if item.scene.source == ROMANIAN:
        lo, hi = (0.8, 2.4) if close_up else (0.22, 0.8)
    else:
        lo, hi = (1.6, 3.0) if close_up else (0.4, 1.6)
    s = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    r = s / item.factor
    angle = math.radians(rng.uniform(-roll, roll))
    shear = rng.uniform(-0.08, 0.08)
    flip = rng.random() < 0.5
    a = np.array(
        [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], np.float32
    ) @ np.array([[1, shear], [0, 1]], np.float32)
    a = a * r * rng.uniform(0.9, 1.1, size=(2, 1)).astype(np.float32)  # slight aspect jitter
    if flip:
        a = np.array([[-1, 0], [0, 1]], np.float32) @ a
    h, w = item.image.shape
    if len(item.plates) and rng.random() < 0.75:
        b = item.plates[rng.integers(len(item.plates))]
        focus = np.array([b[0] + b[2] / 2, b[1] + b[3] / 2], np.float32)
        target = rng.uniform(size * 0.1, size * 0.9, 2).astype(np.float32)
    else:
        focus = np.array([rng.uniform(0, w), rng.uniform(0, h)], np.float32)
        target = np.array([size / 2, size / 2], np.float32)
    t = target - a @ focus
    m = np.concatenate([a, t[:, None]], 1)
    fill = int(rng.integers(0, 256))
    crop = cv2.warpAffine(
        item.image,
        m,
        (size, size),
        flags=cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=fill,
    )
    plates, pvis = _affine_boxes(item.plates, m, size)
    vehicles, vvis = _affine_boxes(item.vehicles, m, size)
    cut = plates[(pvis > 0) & (pvis < MIN_VISIBLE)]
    plates = plates[pvis >= MIN_VISIBLE]
    vehicles = vehicles[vvis >= MIN_VISIBLE]
    corners = np.full((len(plates), 4, 2), np.nan, np.float32)
    if real_quads and len(plates):
        quads = np.stack([_box_corners(b) for b in item.plates]) @ m[:, :2].T + m[:, 2]
        corners = quads[pvis >= MIN_VISIBLE].astype(np.float32)
    if paste is not None:
        crop, sp, sc = paste(crop, rng, vehicles, plates)
        if len(sp):
            plates = np.concatenate([plates, sp.astype(np.float32)])
            corners = np.concatenate([corners, sc.astype(np.float32)])
    return Crop(_photometric(crop, rng), plates, corners, cut, vehicles)


def sample(
    item: Loaded, rng: np.random.Generator, paste: PasteFn | None = None, size: int = CROP
) -> tuple[np.ndarray, Targets]:
    """One augmented ``size`` x ``size`` crop (float32 in [0, 1]) and its CenterNet targets."""
    c = augment(item, rng, paste, size)
    plates, vehicles = c.plates, c.vehicles
    boxes = np.concatenate([plates, vehicles]) if len(vehicles) else plates
    labels = np.array([0] * len(plates) + [1] * len(vehicles), np.int64)
    all_corners = np.concatenate(
        [c.corners, np.full((len(vehicles), 4, 2), np.nan, np.float32)]
    )
    mask = np.array([1.0, 1.0 if item.scene.has_vehicle_labels else 0.0], np.float32)
    grid = (size // STRIDE, size // STRIDE)
    return c.image, encode(grid, boxes, labels, all_corners, mask)


def batch(
    items: list[Loaded],
    rng: np.random.Generator,
    n: int,
    paste: PasteFn | None = None,
    p: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``n`` crops; scenes drawn uniformly, or with probabilities ``p``."""
    xs, ts = [], []
    for _ in range(n):
        x, t = sample(items[int(rng.choice(len(items), p=p))], rng, paste)
        xs.append(x)
        ts.append(t)
    return np.stack(xs)[..., None], {
        "heatmap": np.stack([t.heatmap for t in ts]),
        "class_mask": np.stack([t.class_mask for t in ts]),
        "reg": np.stack([t.reg for t in ts]),
        "reg_w": np.stack([t.reg_w for t in ts]),
        "off_w": np.stack([t.off_w for t in ts]),
        "corners": np.stack([t.corners for t in ts]),
        "corners_w": np.stack([t.corners_w for t in ts]),
    }
