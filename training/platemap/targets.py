"""DB-style training targets for the plate map: a shrunk core of each plate, and what to ignore.

Differentiable-binarisation detectors learn a "shrunk" kernel of each region (the polygon moved
inwards by D = A (1 - r^2) / L, r = 0.4) so that neighbouring regions stay apart; at run time
each kernel is grown back out by A' x unclip / L' (``inference.textlines``). Plates whose core
would be under ``MIN_CORE_PX`` high, and plates cut by the crop's edge, are ignored (neither
positive nor negative): the network cannot be right about them, and punishing it either way
teaches noise. Pure numpy + OpenCV, no TensorFlow.
"""

from __future__ import annotations

import cv2
import numpy as np

SHRINK_RATIO = 0.4
MIN_CORE_PX = 1.5


def quad_of(box: np.ndarray, corners: np.ndarray | None) -> np.ndarray:
    """The plate's outline: its corners when known, else its box's."""
    if corners is not None and np.isfinite(corners).all():
        return corners.astype(np.float64)
    x, y, w, h = (float(v) for v in box)
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)


def _area2(poly: np.ndarray) -> float:
    """Twice the signed area (shoelace): positive for one winding, negative for the other."""
    x, y = poly[:, 0], poly[:, 1]
    return float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def shrink(quad: np.ndarray, ratio: float = SHRINK_RATIO) -> np.ndarray | None:
    """``quad`` (a convex outline, either winding) moved inwards by DB's offset
    D = A (1 - ratio^2) / L; None when nothing is left.

    For a convex polygon the inward offset is exact by moving each edge's line inwards by D and
    intersecting neighbours (what a polygon-clipping library does for this case).
    """
    poly = np.asarray(quad, np.float64)
    area2 = _area2(poly)
    perim = float(np.sum(np.linalg.norm(np.roll(poly, -1, axis=0) - poly, axis=1)))
    area = abs(area2) / 2
    if area < 1 or perim < 1:
        return None
    d = area * (1 - ratio**2) / perim
    sign = 1.0 if area2 > 0 else -1.0  # inward normal side depends on the winding
    n = len(poly)
    lines = []
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        e = b - a
        length = float(np.hypot(*e))
        if length < 1e-9:
            return None
        normal = sign * np.array([-e[1], e[0]]) / length  # points inside
        lines.append((a + normal * d, e))
    out = []
    for i in range(n):
        (p1, e1), (p2, e2) = lines[i - 1], lines[i]
        den = e1[0] * e2[1] - e1[1] * e2[0]
        if abs(den) < 1e-12:
            return None
        t = ((p2[0] - p1[0]) * e2[1] - (p2[1] - p1[1]) * e2[0]) / den
        out.append(p1 + t * e1)
    core = np.asarray(out)
    if _area2(core) * area2 <= 0:  # turned inside out: the offset consumed the polygon
        return None
    return core


def _min_side(poly: np.ndarray) -> float:
    (_, _), (w, h), _ = cv2.minAreaRect(poly.astype(np.float32))
    return float(min(w, h))


def plate_map(
    size: int,
    plates: np.ndarray,
    corners: np.ndarray,
    ignore_boxes: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(gt, mask), both (size, size) float32: 1 inside each plate's core; mask 0 over plates
    too small to learn and over ``ignore_boxes`` (plates cut by the crop edge)."""
    gt = np.zeros((size, size), np.float32)
    mask = np.ones((size, size), np.float32)
    for i, b in enumerate(plates):
        quad = quad_of(b, corners[i] if len(corners) else None)
        core = shrink(quad)
        if core is None or _min_side(core) < MIN_CORE_PX:
            cv2.fillPoly(mask, [np.round(quad).astype(np.int32)], 0.0)
            continue
        cv2.fillPoly(gt, [np.round(core).astype(np.int32)], 1.0)
    for b in ignore_boxes:
        cv2.fillPoly(mask, [np.round(quad_of(b, None)).astype(np.int32)], 0.0)
    return gt, mask
