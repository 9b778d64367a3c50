"""Typed records produced by the reading stack.

Boxes are in pixels of the frame they came from, ``x, y`` the top-left corner. Corners, when a
model gives them, run clockwise from top-left: ``((x0, y0), (x1, y1), (x2, y2), (x3, y3))``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

Corners = tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]]


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    def holds_centre_of(self, other: Box) -> bool:
        """Whether ``other``'s centre lies in this box, edges included: the rule that puts a
        plate on a vehicle (the tracker) and so decides which rows its overview needs."""
        return self.x <= other.cx <= self.x + self.w and self.y <= other.cy <= self.y + self.h

    def intersection(self, other: Box) -> float:
        """The area this box shares with ``other``."""
        ix = max(0.0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0.0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        return ix * iy

    def overlaps(self, other: Box) -> bool:
        """Whether the two boxes share at least half the smaller one's area: a second box of
        the same plate, however much larger, or a part of it."""
        shared = self.intersection(other)
        return shared > 0 and shared >= 0.5 * min(self.w * self.h, other.w * other.h)

    def iou(self, other: Box) -> float:
        inter = self.intersection(other)
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class Detection:
    """One object found in a frame by the detector."""

    box: Box
    score: float
    label: str = "plate"  # "plate" or "vehicle"
    corners: Corners | None = None

    def moved(self, dx: float, dy: float) -> Detection:
        """This detection in the pixels of a larger frame in which its own frame (a window cut
        from it) starts at ``(dx, dy)``."""
        b = self.box
        corners = None
        if self.corners is not None:
            corners = tuple((x + dx, y + dy) for x, y in self.corners)
        return replace(
            self, box=Box(b.x + dx, b.y + dy, b.w, b.h), corners=corners  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class Candidate:
    text: str
    confidence: float


@dataclass(frozen=True, eq=False)
class StepProbs:
    """The reader's per-step class probabilities behind a read (softmax temperature applied),
    kept so the read can be decoded again under a plate format (``inference.ocr.in_format``)."""

    probs: np.ndarray  # (steps, classes) float32
    alphabet: str  # class i's symbol; the blank's symbol at ``blank``
    blank: int


@dataclass(frozen=True)
class OcrResult:
    """What the plate reader makes of one rectified plate crop.

    ``text`` may contain ``?`` for a character position the reader could not tell (a partial read).
    ``plate_class`` is one of ``full``, ``partial``, ``paper``. ``steps``: the probabilities the
    read was decoded from, where the reader kept them (not compared, not shown). ``design``: a
    plate design the region head recognised (``br-mercosur``), with its probability.
    """

    text: str
    confidence: float
    char_confidences: tuple[float, ...]
    candidates: tuple[Candidate, ...]
    region: str | None = None
    region_confidence: float = 0.0
    plate_class: str = "full"
    steps: StepProbs | None = field(default=None, compare=False, repr=False)
    design: str | None = None
    design_confidence: float = 0.0


@dataclass(frozen=True, eq=False)
class PlateObservation:
    """A plate seen in one frame: where, what it reads, and the rectified crop it was read from."""

    detection: Detection
    ocr: OcrResult
    crop: np.ndarray = field(repr=False)  # rectified plate crop, HxWx3 uint8 RGB


@dataclass(frozen=True, eq=False)
class FrameResult:
    """Everything the engine found in one frame."""

    frame_time_s: float
    plates: tuple[PlateObservation, ...]
    vehicles: tuple[Detection, ...] = ()
