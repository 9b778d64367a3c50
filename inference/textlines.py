"""Find lines of text in a photo with PP-OCRv4's pretrained DB text detector (int8 weights).

The engine asks this when the plate detector finds nothing legible in a still photo: the plate
detector was trained here on a few hundred scenes and misses close-ups and plate designs it has
not seen, while this network, trained upstream on a great deal of text, finds a clear
registration at any scale. Its lines are only candidates: the engine reads each one and keeps
what reads like a plate (``inference.engine``). The model is ``models/textlines.tflite``, made by
``training/textlines/export.py``; see ``docs/models-detector.md``.

:func:`preprocess` and :func:`lines_from_probability` are pure and testable without a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from drivers.resource import Closing
from inference.detector import as_grey
from inference.errors import ModelError
from inference.geometry import Letterbox, letterbox
from inference.records import Box
from inference.runtime import TFLiteModel

MODEL_NAME = "textlines"


@dataclass(frozen=True)
class TextLineSettings:
    """DB post-processing, as upstream ships it (rapidocr 1.4.4's defaults).

    ``threshold``: a pixel is text at this probability. ``box_threshold``: a region's mean
    probability to keep it. ``unclip_ratio``: how far a region is grown back out (the network
    marks a shrunk core of each line). ``max_lines``: kept per photo, best first.
    """

    threshold: float = 0.3
    box_threshold: float = 0.5
    unclip_ratio: float = 1.6
    max_lines: int = 32
    min_side: float = 3.0

    def __post_init__(self) -> None:
        for name in ("threshold", "box_threshold"):
            v = getattr(self, name)
            if not 0.0 < v < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {v}")
        if not 1.0 <= self.unclip_ratio <= 4.0:
            raise ValueError(f"unclip_ratio must be 1..4, got {self.unclip_ratio}")
        if not 1 <= self.max_lines <= 256:
            raise ValueError(f"max_lines must be 1..256, got {self.max_lines}")
        if not 0.5 <= self.min_side <= 16:
            raise ValueError(f"min_side must be 0.5..16, got {self.min_side}")


@dataclass(frozen=True)
class TextLine:
    """One line of text: its axis-aligned box and corners (clockwise from top-left, as
    ``cv2.boxPoints`` orders a rotated rectangle) in frame pixels, and its mean probability."""

    box: Box
    corners: tuple[tuple[float, float], ...]
    score: float


def preprocess(
    frame_rgb: np.ndarray, input_hw: tuple[int, int], grey: bool = False
) -> tuple[np.ndarray, Letterbox]:
    """The network input (1, h, w, 3) float32 for an RGB or grey uint8 frame, and its letterbox.

    Upstream's text detector takes BGR; with ``grey`` the frame is made grey and the grey
    replicated to three channels, as the plate map was trained (IR cameras are mono).
    """
    if grey:
        g = as_grey(frame_rgb)
        boxed, lb = letterbox(g, input_hw)
        x = boxed.astype(np.float32) * (1.0 / 127.5) - 1.0
        return np.repeat(x[None, :, :, None], 3, axis=3), lb
    if frame_rgb.ndim == 2:
        frame_rgb = np.repeat(frame_rgb[:, :, None], 3, axis=2)
    boxed, lb = letterbox(np.ascontiguousarray(frame_rgb[:, :, ::-1]), input_hw)
    x = boxed.astype(np.float32) * (1.0 / 127.5) - 1.0
    return x[None], lb


def lines_from_probability(
    prob: np.ndarray, settings: TextLineSettings
) -> list[tuple[np.ndarray, float]]:
    """Text regions of a (h, w) probability map: (4x2 corner points, mean probability), best
    first, in the map's pixels. Pure.

    Each connected region above ``threshold`` gives its minimum-area rectangle, grown by
    area x ``unclip_ratio`` / perimeter on every side (DB's unclip, for a rectangle).
    """
    # Upstream dilates by 2x2 so that the characters of one line join.
    bitmap = cv2.dilate((prob > settings.threshold).astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    found: list[tuple[np.ndarray, float]] = []
    for c in contours:
        (cx, cy), (w, h), angle = cv2.minAreaRect(c)
        if min(w, h) < settings.min_side:
            continue
        x, y, bw, bh = cv2.boundingRect(c)
        mask = np.zeros((bh, bw), np.uint8)
        cv2.fillPoly(mask, [c.reshape(-1, 2) - (x, y)], 1)
        score = float(cv2.mean(prob[y : y + bh, x : x + bw].astype(np.float32), mask)[0])
        if score < settings.box_threshold:
            continue
        grow = w * h * settings.unclip_ratio / (2 * (w + h))
        pts = cv2.boxPoints(((cx, cy), (w + 2 * grow, h + 2 * grow), angle))
        found.append((pts.astype(np.float64), score))
    found.sort(key=lambda f: -f[1])
    return found[: settings.max_lines]


class TextLineFinder(Closing):
    """A DB detector (the text-line model, or the plate map fine-tuned from it) plus its pre- and
    post-processing. One per worker thread."""

    def __init__(self, model: TFLiteModel, settings: TextLineSettings) -> None:
        self._model = model
        self.settings = settings
        spec = model.manifest.inputs[0]
        if len(spec.shape) != 4 or spec.shape[0] != 1 or spec.shape[3] != 3:
            raise ModelError(f"text detector input must be 1xHxWx3, manifest says {spec.shape}")
        self.input_hw: tuple[int, int] = (spec.shape[1], spec.shape[2])
        self._grey = model.manifest.labels.get("input_colour") == "grey"
        model.manifest.output("probability")

    @classmethod
    def load(
        cls,
        model_dir: Path,
        threads: int = 1,
        settings: TextLineSettings | None = None,
        name: str = MODEL_NAME,
    ) -> TextLineFinder:
        return cls(TFLiteModel.load(model_dir, name, threads), settings or TextLineSettings())

    def find(self, frame_rgb: np.ndarray) -> list[TextLine]:
        """Every line of text in ``frame_rgb`` (HxWx3 RGB or HxW grey uint8), best first."""
        grey = as_grey(frame_rgb)  # the same frame checks as the plate detector
        x, lb = preprocess(grey if self._grey else frame_rgb, self.input_hw, self._grey)
        prob = self._model.run(x)["probability"].reshape(self.input_hw)
        lines = []
        for pts, score in lines_from_probability(prob, self.settings):
            fb = lb.boxes_to_frame(
                np.array([[*pts.min(0), *(pts.max(0) - pts.min(0))]], np.float64)
            )[0]
            quad = lb.points_to_frame(pts)
            if fb[2] < 2 or fb[3] < 2:
                continue
            lines.append(
                TextLine(
                    Box(float(fb[0]), float(fb[1]), float(fb[2]), float(fb[3])),
                    tuple((float(px), float(py)) for px, py in quad),
                    score,
                )
            )
        return lines

    def close(self) -> None:
        self._model.close()


def plate_candidates(lines: list[TextLine], max_candidates: int = 6) -> list[Box]:
    """Boxes worth reading as a plate, best line first: each line of a plate's shape, and two
    lines stacked as on a two-row plate (their union, ahead of the lines themselves). Pure.

    A plate's registration is one line 1.2 to 8 times as wide as it is high, or two such lines
    of similar height, one above the other, overlapping across most of the narrower one.
    """
    shaped = [ln for ln in lines if 1.2 * ln.box.h <= ln.box.w <= 8 * ln.box.h and ln.box.h >= 6]
    out: list[Box] = []
    for i, a in enumerate(shaped):
        for b in shaped[i + 1 :]:
            top, low = (a, b) if a.box.cy < b.box.cy else (b, a)
            t, lo = top.box, low.box
            gap = lo.y - (t.y + t.h)
            overlap = min(t.x + t.w, lo.x + lo.w) - max(t.x, lo.x)
            if (
                -0.3 * min(t.h, lo.h) <= gap <= 0.6 * max(t.h, lo.h)
                and overlap >= 0.6 * min(t.w, lo.w)
                and max(t.h, lo.h) <= 2.0 * min(t.h, lo.h)
            ):
                x0, y0 = min(t.x, lo.x), t.y
                x1, y1 = max(t.x + t.w, lo.x + lo.w), lo.y + lo.h
                out.append(Box(x0, y0, x1 - x0, y1 - y0))
        out.append(a.box)
    return out[:max_candidates]
