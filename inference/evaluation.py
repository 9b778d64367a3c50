"""End-to-end scoring of plate reads against labelled real scenes. Pure: no I/O, no models.

A dataset is a list of :class:`LabelledImage` (plates with their box, text and region; text
``None`` marks a plate a person could not read: it counts for localisation, never for reading).
Predictions are what ``vigil read`` writes per image (:class:`PredictedPlate`).

Matching, per image: a prediction belongs to a labelled plate when its box overlaps it with IoU
>= ``MATCH_IOU`` or its centre lies inside the plate's box (a loose box that still holds the plate
is the plate, and the read is judged on its text), one-to-one, best IoU first. Localisation
figures use IoU alone (``found_50``: IoU >= 0.5, ``found_70``: IoU >= 0.7). A prediction matched to
no labelled plate is a false plate.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from inference.records import Box
from inference.vote import edit_distance

MATCH_IOU = 0.3
WIDTH_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("<60", 0.0, 60.0),
    ("60-100", 60.0, 100.0),
    ("100-200", 100.0, 200.0),
    (">200", 200.0, math.inf),
)
ECE_BINS = 10


@dataclass(frozen=True)
class LabelledPlate:
    box: Box
    text: str | None  # None: a person could not read every character
    region: str = "unknown"


@dataclass(frozen=True)
class LabelledImage:
    image: str
    plates: tuple[LabelledPlate, ...]


@dataclass(frozen=True)
class PredictedPlate:
    box: Box
    text: str
    confidence: float
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageResult:
    image: str
    ms: float
    plates: tuple[PredictedPlate, ...]
    error: str | None = None


@dataclass(frozen=True)
class PlateOutcome:
    """One labelled plate after matching: what was found and read for it."""

    image: str
    truth: LabelledPlate
    pred: PredictedPlate | None
    iou: float

    @property
    def readable(self) -> bool:
        return self.truth.text is not None

    @property
    def exact(self) -> bool:
        return self.pred is not None and self.pred.text == self.truth.text

    @property
    def in_top_n(self) -> bool:
        if self.pred is None or self.truth.text is None:
            return False
        return self.truth.text == self.pred.text or self.truth.text in self.pred.candidates

    @property
    def width_bucket(self) -> str:
        return width_bucket(self.truth.box.w)


@dataclass
class Evaluation:
    outcomes: list[PlateOutcome] = field(default_factory=list)
    false_plates: int = 0
    images: int = 0
    errors: int = 0
    ms: list[float] = field(default_factory=list)


def width_bucket(width_px: float) -> str:
    for name, lo, hi in WIDTH_BUCKETS:
        if lo <= width_px < hi:
            return name
    return WIDTH_BUCKETS[-1][0]


def _inside(pred: Box, truth: Box) -> bool:
    return truth.x <= pred.cx <= truth.x + truth.w and truth.y <= pred.cy <= truth.y + truth.h


def match_image(truth: LabelledImage, result: ImageResult) -> tuple[list[PlateOutcome], int]:
    """Outcomes for every labelled plate of one image, and its number of false plates."""
    pairs = []
    for ti, t in enumerate(truth.plates):
        for pi, p in enumerate(result.plates):
            iou = t.box.iou(p.box)
            if iou >= MATCH_IOU or _inside(p.box, t.box):
                pairs.append((iou, ti, pi))
    pairs.sort(key=lambda x: -x[0])
    used_t: dict[int, tuple[int, float]] = {}
    used_p: set[int] = set()
    for iou, ti, pi in pairs:
        if ti in used_t or pi in used_p:
            continue
        used_t[ti] = (pi, iou)
        used_p.add(pi)
    outcomes = []
    for ti, t in enumerate(truth.plates):
        if ti in used_t:
            pi, iou = used_t[ti]
            outcomes.append(PlateOutcome(truth.image, t, result.plates[pi], iou))
        else:
            outcomes.append(PlateOutcome(truth.image, t, None, 0.0))
    return outcomes, len(result.plates) - len(used_p)


def evaluate(dataset: Iterable[LabelledImage], results: Sequence[ImageResult]) -> Evaluation:
    by_image = {r.image: r for r in results}
    ev = Evaluation()
    for img in dataset:
        ev.images += 1
        res = by_image.get(img.image)
        if res is None or res.error is not None:
            ev.errors += 1
            res = ImageResult(img.image, 0.0, (), res.error if res else "not run")
        else:
            ev.ms.append(res.ms)
        outcomes, false_plates = match_image(img, res)
        ev.outcomes.extend(outcomes)
        ev.false_plates += false_plates
    return ev


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _percentile(xs: Sequence[float], p: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(p * len(s)))], 2)


def calibration_error(pairs: Sequence[tuple[float, bool]], bins: int = ECE_BINS) -> float | None:
    """Expected calibration error of (confidence, correct) pairs over equal-width bins."""
    if not pairs:
        return None
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        sel = [(c, ok) for c, ok in pairs if lo <= c < hi or (b == bins - 1 and c == 1.0)]
        if sel:
            conf = sum(c for c, _ in sel) / len(sel)
            acc = sum(ok for _, ok in sel) / len(sel)
            total += len(sel) / len(pairs) * abs(conf - acc)
    return round(total, 4)


def summarize(outcomes: Sequence[PlateOutcome]) -> dict[str, Any]:
    """Reading and localisation figures over a group of labelled plates."""
    readable = [o for o in outcomes if o.readable]
    found = [o for o in outcomes if o.iou >= 0.5]
    edits = sum(edit_distance(o.pred.text if o.pred else "", o.truth.text or "") for o in readable)
    chars = sum(len(o.truth.text or "") for o in readable)
    return {
        "plates": len(outcomes),
        "readable": len(readable),
        "exact_read": _rate(sum(o.exact for o in readable), len(readable)),
        "top_n": _rate(sum(o.in_top_n for o in readable), len(readable)),
        "cer": _rate(edits, chars),
        "det_recall_50": _rate(len(found), len(outcomes)),
        # The engine reports a plate only on a legible read (``EngineSettings.min_legible_chars``),
        # so plates nobody can read are mostly not found by design: this says how the plates
        # that matter for reading fare.
        "det_recall_50_readable": _rate(sum(o.readable for o in found), len(readable)),
        "det_recall_70": _rate(sum(o.iou >= 0.7 for o in outcomes), len(outcomes)),
        "median_iou_found": round(statistics.median(o.iou for o in found), 4) if found else None,
    }


def report(ev: Evaluation) -> dict[str, Any]:
    """Every figure ``vigil eval`` prints: overall, by width bucket, by region, timings."""
    by_width: dict[str, list[PlateOutcome]] = defaultdict(list)
    by_region: dict[str, list[PlateOutcome]] = defaultdict(list)
    for o in ev.outcomes:
        by_width[o.width_bucket].append(o)
        by_region[o.truth.region].append(o)
    calib = [(o.pred.confidence, o.exact) for o in ev.outcomes if o.readable and o.pred]
    return {
        **summarize(ev.outcomes),
        "false_plates_per_image": _rate(ev.false_plates, ev.images),
        "calibration_error": calibration_error(calib),
        "images": ev.images,
        "errors": ev.errors,
        "unreadable": sum(not o.readable for o in ev.outcomes),
        "ms_median": round(statistics.median(ev.ms), 2) if ev.ms else None,
        "ms_p95": _percentile(ev.ms, 0.95),
        "by_width": {
            name: summarize(by_width[name]) for name, _, _ in WIDTH_BUCKETS if by_width[name]
        },
        "by_region": {k: summarize(v) for k, v in sorted(by_region.items())},
    }


def failures(ev: Evaluation) -> list[PlateOutcome]:
    """Readable plates not read exactly, smallest IoU first (missed plates lead)."""
    return sorted((o for o in ev.outcomes if o.readable and not o.exact), key=lambda o: o.iou)
