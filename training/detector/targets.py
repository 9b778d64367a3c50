"""CenterNet training targets on the stride-4 grid (pure numpy).

The encoding is the inverse of :func:`inference.geometry.decode_centernet`; see
:mod:`training.detector.model` for the meaning of each output channel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.detector.spec import CLASSES, STRIDE

# Cells whose Gaussian weight is at least this also regress the box: more signal per object than
# the single centre cell (as in TTFNet), which matters with so few training scenes.
REG_MIN_WEIGHT = 0.3


@dataclass(frozen=True)
class Targets:
    heatmap: np.ndarray  # (gh, gw, C) in [0, 1], exactly 1 at each object's centre cell
    class_mask: np.ndarray  # (C,) 0 where the class is not labelled in this image
    reg: np.ndarray  # (gh, gw, 4): offset x, offset y, log w/4, log h/4
    reg_w: np.ndarray  # (gh, gw, 1) weight of the size regression
    off_w: np.ndarray  # (gh, gw, 1) weight of the offset regression
    corners: np.ndarray  # (gh, gw, 8)
    corners_w: np.ndarray  # (gh, gw, 1)


def encode(
    grid_hw: tuple[int, int],
    boxes: np.ndarray,
    labels: np.ndarray,
    corners: np.ndarray | None,
    class_mask: np.ndarray,
) -> Targets:
    """``boxes`` (N, 4) ``[x, y, w, h]`` in input pixels; ``labels`` (N,) class indices;
    ``corners`` (N, 4, 2) in input pixels with NaN rows where unknown, or None."""
    gh, gw = grid_hw
    heat = np.zeros((gh, gw, len(CLASSES)), np.float32)
    reg = np.zeros((gh, gw, 4), np.float32)
    reg_w = np.zeros((gh, gw, 1), np.float32)
    off_w = np.zeros((gh, gw, 1), np.float32)
    best = np.zeros((gh, gw), np.float32)  # the weight of the object that owns each cell
    cor = np.zeros((gh, gw, 8), np.float32)
    cor_w = np.zeros((gh, gw, 1), np.float32)
    ys = np.arange(gh, dtype=np.float32)[:, None]
    xs = np.arange(gw, dtype=np.float32)[None, :]
    # Small objects last so they win the cells they share with a big one (plate on a vehicle).
    order = np.argsort(-(boxes[:, 2] * boxes[:, 3])) if len(boxes) else np.zeros(0, int)
    for i in order:
        x, y, w, h = (float(v) for v in boxes[i])
        if w < 1.0 or h < 1.0:
            continue
        cx, cy = (x + w / 2) / STRIDE, (y + h / 2) / STRIDE
        col, row = int(np.floor(cx)), int(np.floor(cy))
        if not (0 <= col < gw and 0 <= row < gh):
            continue
        sx = max(0.6, w / STRIDE / 6)
        sy = max(0.6, h / STRIDE / 6)
        g = np.exp(-((xs + 0.5 - cx) ** 2) / (2 * sx * sx) - ((ys + 0.5 - cy) ** 2) / (2 * sy * sy))
        c = int(labels[i])
        heat[:, :, c] = np.maximum(heat[:, :, c], g)
        heat[row, col, c] = 1.0
        g = g.copy()
        g[row, col] = 1.0
        take = (g >= REG_MIN_WEIGHT) & (g > best)
        best[take] = g[take]
        reg[..., 0] = np.where(take, cx - xs, reg[..., 0])
        reg[..., 1] = np.where(take, cy - ys, reg[..., 1])
        reg[..., 2] = np.where(take, np.log(w / STRIDE), reg[..., 2])
        reg[..., 3] = np.where(take, np.log(h / STRIDE), reg[..., 3])
        reg_w[..., 0] = np.where(take, g, reg_w[..., 0])
        # The offset is only read at a peak, which lands on or next to the centre cell; asking
        # far cells of a big vehicle for a 10-cell offset only pulls capacity from small plates.
        near = take & (np.abs(xs + 0.5 - cx) <= 1.5) & (np.abs(ys + 0.5 - cy) <= 1.5)
        off_w[..., 0] = np.where(take, np.where(near, g, 0.0), off_w[..., 0])
        has_corners = corners is not None and not np.isnan(corners[i]).any()
        if has_corners:
            assert corners is not None
            rel = (corners[i] - np.array([x + w / 2, y + h / 2])) / np.array([w, h])
            cor[take] = rel.reshape(8).astype(np.float32)
            cor_w[..., 0] = np.where(take, g, cor_w[..., 0])
        else:
            cor_w[..., 0] = np.where(take, 0.0, cor_w[..., 0])
    return Targets(heat, class_mask.astype(np.float32), reg, reg_w, off_w, cor, cor_w)
