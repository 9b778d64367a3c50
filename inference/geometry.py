"""Pure geometry of the reading stack: letterboxing, CenterNet decoding, NMS, plate rectification.

No model and no I/O here; arrays in, arrays out. Boxes are ``[x, y, w, h]`` float arrays with
``x, y`` the top-left corner; corners run clockwise from top-left, shape ``(4, 2)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Letterbox:
    """How a frame was placed into the model input: scaled by ``scale``, top-left aligned.

    A point ``p`` of the model input is ``p / scale`` in the original frame.
    """

    scale: float
    frame_hw: tuple[int, int]
    input_hw: tuple[int, int]

    def boxes_to_frame(self, boxes: np.ndarray) -> np.ndarray:
        """Map ``(N, 4)`` boxes from model input to frame pixels, clipped to the frame."""
        b = np.asarray(boxes, np.float64).reshape(-1, 4) / self.scale
        h, w = self.frame_hw
        x0 = np.clip(b[:, 0], 0, w)
        y0 = np.clip(b[:, 1], 0, h)
        x1 = np.clip(b[:, 0] + b[:, 2], 0, w)
        y1 = np.clip(b[:, 1] + b[:, 3], 0, h)
        return np.stack([x0, y0, x1 - x0, y1 - y0], 1)

    def points_to_frame(self, pts: np.ndarray) -> np.ndarray:
        return np.asarray(pts, np.float64) / self.scale


def letterbox_scale(frame_hw: tuple[int, int], input_hw: tuple[int, int]) -> float:
    """The scale :func:`letterbox` sees a frame of ``frame_hw`` at."""
    (h, w), (ih, iw) = frame_hw, input_hw
    return min(iw / w, ih / h)


def letterbox(image: np.ndarray, input_hw: tuple[int, int], fill: int = 0) -> tuple[
    np.ndarray, Letterbox
]:
    """Resize ``image`` (HxW or HxWxC uint8) to fit ``input_hw`` keeping its aspect, top-left.

    Top-left placement keeps the mapping back to frame pixels a single division.
    """
    h, w = image.shape[:2]
    ih, iw = input_hw
    scale = letterbox_scale((h, w), input_hw)
    nw, nh = max(1, min(iw, round(w * scale))), max(1, min(ih, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interp)
    out = np.full((ih, iw, *image.shape[2:]), fill, dtype=image.dtype)
    out[:nh, :nw] = resized
    return out, Letterbox(scale=scale, frame_hw=(h, w), input_hw=input_hw)


def peaks(heatmap: np.ndarray, threshold: float, max_peaks: int) -> tuple[np.ndarray, ...]:
    """Local maxima (3x3) of one ``(gh, gw)`` heatmap at or above ``threshold``.

    Returns ``(rows, cols, scores)``, best first, at most ``max_peaks``. Plateaus (equal
    neighbours, common after int8 quantisation) keep only their first cell in raster order.
    """
    hm = np.ascontiguousarray(heatmap, dtype=np.float32)
    dil = cv2.dilate(hm, np.ones((3, 3), np.uint8))
    cand = (hm >= dil) & (hm >= threshold)
    rows, cols = np.nonzero(cand)
    if rows.size == 0:
        return rows, cols, np.zeros(0, np.float32)
    scores = hm[rows, cols]
    order = np.argsort(-scores, kind="stable")
    # Plateaus are at most a few cells, so this many candidates always covers max_peaks.
    order = order[: max_peaks * 9]
    rows, cols, scores = rows[order], cols[order], scores[order]
    # Drop plateau duplicates: a peak with an equal, already-kept neighbour.
    keep: list[int] = []
    taken: set[tuple[int, int]] = set()
    for i, (r, c) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True)):
        if any((r + dr, c + dc) in taken for dr in (-1, 0, 1) for dc in (-1, 0, 1)):
            continue
        taken.add((r, c))
        keep.append(i)
        if len(keep) >= max_peaks:
            break
    k = np.asarray(keep, int)
    return rows[k], cols[k], scores[k]


@dataclass(frozen=True)
class Decoded:
    boxes: np.ndarray  # (N, 4) model-input pixels
    scores: np.ndarray  # (N,)
    corners: np.ndarray | None  # (N, 4, 2) model-input pixels


def decode_centernet(
    heatmap: np.ndarray,
    offset: np.ndarray,
    size: np.ndarray,
    stride: int,
    threshold: float,
    max_peaks: int,
    corners: np.ndarray | None = None,
) -> Decoded:
    """Boxes from one class's ``(gh, gw)`` heatmap and the shared ``(gh, gw, 2)`` regressions.

    ``offset`` is the centre's position inside its cell, ``size`` is ``log(w/stride),
    log(h/stride)``, ``corners`` ``(gh, gw, 8)`` each ``((x - cx)/w, (y - cy)/h)``.
    """
    rows, cols, scores = peaks(heatmap, threshold, max_peaks)
    off = offset[rows, cols]
    sz = np.exp(np.clip(size[rows, cols], -4.0, 8.0)) * stride
    cx = (cols + off[:, 0]) * stride
    cy = (rows + off[:, 1]) * stride
    w, h = sz[:, 0], sz[:, 1]
    boxes = np.stack([cx - w / 2, cy - h / 2, w, h], 1).astype(np.float64)
    quads = None
    if corners is not None:
        rel = corners[rows, cols].reshape(-1, 4, 2).astype(np.float64)
        quads = rel * np.stack([w, h], 1)[:, None, :] + np.stack([cx, cy], 1)[:, None, :]
    return Decoded(boxes, scores.astype(np.float64), quads)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``(N, 4)`` and ``(M, 4)`` boxes."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    ax1, ay1 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.minimum(ax1[:, None], bx1[None]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(ay1[:, None], by1[None]) - np.maximum(a[:, None, 1], b[None, :, 1])
    iw, ih = np.clip(iw, 0, None), np.clip(ih, 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, best score first."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if len(boxes) != len(scores):
        raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
    order = np.argsort(-scores, kind="stable")
    ious = iou_matrix(boxes, boxes)
    keep: list[int] = []
    suppressed = np.zeros(len(boxes), bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        suppressed |= ious[i] > iou_threshold
    return np.asarray(keep, dtype=np.int64)


def suppress_contained_centres(boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Indices kept when every box whose centre lies inside a better-scoring kept box is dropped.

    For plates only: two real plates never overlap that much, but a CenterNet may put a second,
    differently sized peak on one long plate that plain IoU suppression lets through.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    keep: list[int] = []
    for i in order:
        cx, cy = boxes[i, 0] + boxes[i, 2] / 2, boxes[i, 1] + boxes[i, 3] / 2
        inside = any(
            boxes[k, 0] <= cx <= boxes[k, 0] + boxes[k, 2]
            and boxes[k, 1] <= cy <= boxes[k, 1] + boxes[k, 3]
            for k in keep
        )
        if not inside:
            keep.append(int(i))
    return np.asarray(keep, dtype=np.int64)



def distinct_plates(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the plates kept, best first: NMS, then no plate centred inside a better one
    (two real plates never overlap that much)."""
    keep = nms(boxes, scores, iou_threshold)
    sub = suppress_contained_centres(np.asarray(boxes)[keep], np.asarray(scores)[keep])
    kept: np.ndarray = keep[sub]
    return kept

def quad_is_plausible(quad: np.ndarray, box: np.ndarray, tolerance: float = 0.35) -> bool:
    """True when ``quad`` is a convex, clockwise quadrilateral lying near ``box``.

    A model's corners can be nonsense on a hard crop; a bad warp reads worse than a plain box
    crop, so the caller falls back to the box when this says no.
    """
    q = np.asarray(quad, np.float64).reshape(4, 2)
    if not np.isfinite(q).all():
        return False
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        return False
    lo = np.array([x - tolerance * w, y - tolerance * h])
    hi = np.array([x + (1 + tolerance) * w, y + (1 + tolerance) * h])
    if (q < lo).any() or (q > hi).any():
        return False
    # Clockwise in image coordinates (y down) means every cross product is positive.
    for i in range(4):
        a, b, c = q[i], q[(i + 1) % 4], q[(i + 2) % 4]
        cross = (b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0])
        if cross <= 0:
            return False
    area = 0.5 * abs(
        sum(q[i, 0] * q[(i + 1) % 4, 1] - q[(i + 1) % 4, 0] * q[i, 1] for i in range(4))
    )
    return bool(area >= 0.3 * w * h)


def expand_box(
    box: np.ndarray, margin: tuple[float, float], frame_hw: tuple[int, int]
) -> np.ndarray:
    """``box`` grown on each side by ``margin`` (fractions of its width, height), clipped."""
    x, y, w, h = (float(v) for v in box)
    mx, my = margin
    fh, fw = frame_hw
    x0 = max(0.0, x - mx * w)
    y0 = max(0.0, y - my * h)
    x1 = min(float(fw), x + w + mx * w)
    y1 = min(float(fh), y + h + my * h)
    return np.array([x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0)])


def crop_box(frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Pixels of ``frame`` inside ``box`` (rounded outwards), a copy; empty if outside."""
    fh, fw = frame.shape[:2]
    x0 = int(np.floor(max(0.0, box[0])))
    y0 = int(np.floor(max(0.0, box[1])))
    x1 = int(np.ceil(min(float(fw), box[0] + box[2])))
    y1 = int(np.ceil(min(float(fh), box[1] + box[3])))
    return frame[y0:max(y0, y1), x0:max(x0, x1)].copy()


def rectify(
    frame: np.ndarray, quad: np.ndarray, margin: tuple[float, float] = (0.04, 0.08)
) -> np.ndarray:
    """Warp the plate bounded by ``quad`` (frame pixels) to a fronto-parallel crop.

    The output keeps the plate's own resolution (width = mean of top and bottom edge lengths,
    height = mean of the sides) so a distant plate is not blown up before OCR resizes it; a small
    ``margin`` (fractions of width, height) is kept around it, as the OCR model was trained on
    crops with some border.
    """
    q = np.asarray(quad, np.float64).reshape(4, 2)
    top = float(np.linalg.norm(q[1] - q[0]))
    bottom = float(np.linalg.norm(q[2] - q[3]))
    left = float(np.linalg.norm(q[3] - q[0]))
    right = float(np.linalg.norm(q[2] - q[1]))
    w = max(2.0, (top + bottom) / 2)
    h = max(2.0, (left + right) / 2)
    mx, my = margin[0] * w, margin[1] * h
    out_w, out_h = int(round(w + 2 * mx)), int(round(h + 2 * my))
    dst = np.array(
        [[mx, my], [mx + w, my], [mx + w, my + h], [mx, my + h]], np.float32
    )
    m = cv2.getPerspectiveTransform(q.astype(np.float32), dst)
    return cv2.warpPerspective(
        frame, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def roll_degrees(quad: np.ndarray) -> float:
    """Roll of a plate outline (4x2 corners in order round it), in degrees within (-45, 45]:
    the angle of its longer side, positive clockwise in image coordinates (y down)."""
    q = np.asarray(quad, np.float64).reshape(4, 2)
    a, b = q[1] - q[0], q[2] - q[1]
    side = a if np.hypot(*a) >= np.hypot(*b) else b
    deg = float(np.degrees(np.arctan2(side[1], side[0])))
    while deg > 45.0:
        deg -= 180.0 if deg > 135.0 else 90.0
    while deg <= -45.0:
        deg += 180.0 if deg <= -135.0 else 90.0
    return deg


def level_crop(
    frame: np.ndarray, box: np.ndarray, roll_deg: float, margin: tuple[float, float]
) -> np.ndarray:
    """The plate inside axis-aligned ``box`` (x, y, w, h) turned level: the plate is taken to
    be a ``roll_deg`` rotated rectangle whose corners touch the box, so its own width and height
    follow from the box's; cut with ``margin`` (fractions of them). Empty when the box is too
    square for such a plate (a loose box round a small roll)."""
    x, y, w, h = (float(v) for v in box)
    t = np.radians(abs(roll_deg))
    c, s = np.cos(t), np.sin(t)
    det = c * c - s * s
    pw, ph = (w * c - h * s) / det, (h * c - w * s) / det
    if pw < 2 or ph < 2:
        return frame[:0, :0].copy()
    out_w = int(round(pw * (1 + 2 * margin[0])))
    out_h = int(round(ph * (1 + 2 * margin[1])))
    m = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), roll_deg, 1.0)
    m[:, 2] += np.array([out_w / 2 - (x + w / 2), out_h / 2 - (y + h / 2)])
    return cv2.warpAffine(frame, m, (out_w, out_h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
