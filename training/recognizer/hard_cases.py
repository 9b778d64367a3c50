"""Hard cases for the reader's training crops: rolled plates, IR night and glare. Pure image
functions (numpy/OpenCV in, out), seeded by the caller's generator.

The real plates at hand are mostly level, lit by day and evenly exposed; the field is not. A
pole camera sees plates rolled by the road's camber and the mounting (the issue asks for +-15
degrees), an IR camera at night sees a retroreflective plate blown out against a black car with
sensor noise, and a low sun puts a bright patch across part of the registration.
"""

from __future__ import annotations

import cv2
import numpy as np

ROLL_DEG = (3.0, 12.0)  # beyond about 12 degrees the map's outline turns the cut level


def rolled(
    rng: np.random.Generator, img: np.ndarray, box: list[float]
) -> tuple[np.ndarray, list[float]]:
    """``img`` turned about ``box``'s centre by 3-12 degrees either way, and the upright box
    round the turned plate: what an axis-aligned detector box of a rolled plate holds."""
    x, y, w, h = box
    deg = float(rng.uniform(*ROLL_DEG)) * (1 if rng.random() < 0.5 else -1)
    m = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), deg, 1.0)
    out = cv2.warpAffine(
        img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT_101,
    )
    corners = np.array([[x, y, 1], [x + w, y, 1], [x + w, y + h, 1], [x, y + h, 1]], np.float64)
    moved = corners @ m.T
    x0, y0 = moved.min(axis=0)
    x1, y1 = moved.max(axis=0)
    return out, [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def rolled_plate(rng: np.random.Generator, plate: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """A crop that is all plate, padded with its own edges and turned: (image, plate box)."""
    h, w = plate.shape[:2]
    pad = cv2.copyMakeBorder(plate, h // 2, h // 2, w // 4, w // 4, cv2.BORDER_REFLECT_101)
    return rolled(rng, pad, [w // 4, h // 2, w, h])


def night_ir(rng: np.random.Generator, crop: np.ndarray) -> np.ndarray:
    """Grey, the bright plate pushed towards white and the dark towards black (retroreflective
    sheeting under the camera's own IR), sensor noise, and now and then motion blur."""
    g = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.float32)
    gain = rng.uniform(1.4, 2.6)
    mid = float(np.percentile(g, rng.uniform(30, 60)))
    g = (g - mid) * gain + mid + rng.uniform(0, 50)
    g = g + rng.normal(0.0, rng.uniform(3, 14), g.shape)
    out = np.clip(g, 0, 255).astype(np.uint8)
    if rng.random() < 0.4:
        k = int(rng.choice([3, 5, 7]))
        out = cv2.blur(out, (k, 1))
    return cv2.cvtColor(out, cv2.COLOR_GRAY2BGR)


def glare(rng: np.random.Generator, crop: np.ndarray) -> np.ndarray:
    """A soft bright patch over part of the crop (low sun, a headlamp), up to near white."""
    h, w = crop.shape[:2]
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    sx, sy = rng.uniform(0.1, 0.35) * w, rng.uniform(0.3, 1.0) * h
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    blob = np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2) / 2)
    lift = rng.uniform(80, 200) * blob[:, :, None]
    return np.clip(crop.astype(np.float32) + lift, 0, 255).astype(np.uint8)
