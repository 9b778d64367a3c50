"""Two-row plates (square European and British plates, Mercosur and US motorcycle plates).

The reader reads one line. Handed a two-row plate it reads one row, often surely (``6255BXX``
read ``BXX``), so a plate whose crop is short enough to hold two rows is also cut at the gap
between its rows and each row read as a line; the rows' reads are joined into one read here.
Pure: the engine does the reading and chooses between the two.
"""

from __future__ import annotations

import heapq
import itertools

import numpy as np

from inference.records import Candidate, OcrResult

# A crop at most this wide for its height may hold two rows: square plates are 1.2-1.7:1, a
# one-row plate 4-5:1 (2:1 for US ones: they are tried too when read short).
TWO_ROW_MAX_ASPECT = 2.0
# Where the gap between the rows is looked for, as fractions of the crop's height.
GAP_BAND = (0.3, 0.7)
# Each row's cut reaches this far past the gap, as a fraction of the crop's height, so a
# descender or a badly placed gap does not cut a character off.
ROW_OVERLAP = 0.05
MIN_CROP_ROWS = 16
# A one-line read this long is a whole one-row plate's: one row of a two-row plate holds 2-5
# characters (GN64 / OTP, ABC / 1D23, 6255 / BXX). Longer reads were tried too when unsure, and
# a US plate's state name was joined to its number (TEXAS1032148, tilted dev third).
ONE_ROW_MAX_CHARS = 5
# The rows' joined read replaces the one-line read when it is longer, no longer than a
# registration (191D12345; a US plate's upper "row" is its state name, TEXAS + 1032148) and at
# least this sure.
TWO_ROW_MIN_CONFIDENCE = 0.5
MAX_REGISTRATION_CHARS = 9


def may_have_two_rows(crop: np.ndarray, ocr: OcrResult) -> bool:
    """Whether a plate read as ``ocr`` from ``crop`` is worth reading row by row: short enough
    to hold two rows, and read short as one line."""
    h, w = crop.shape[:2]
    return h >= MIN_CROP_ROWS and w <= TWO_ROW_MAX_ASPECT * h and len(ocr.text) <= ONE_ROW_MAX_CHARS


def rows_read_better(rows: OcrResult, line: OcrResult) -> bool:
    """Whether the rows' joined read replaces the one-line read of the same crop."""
    return (
        len(line.text) < len(rows.text) <= MAX_REGISTRATION_CHARS
        and rows.confidence >= TWO_ROW_MIN_CONFIDENCE
    )


def row_gap(crop: np.ndarray) -> int:
    """The row of the crop between its two text rows: the flattest row (least spread of
    brightness across it) in the middle band, smoothed over three rows."""
    grey = crop.astype(np.float32).mean(axis=2) if crop.ndim == 3 else crop.astype(np.float32)
    h = grey.shape[0]
    spread = grey.std(axis=1)
    smooth = np.convolve(spread, np.ones(3, np.float32) / 3, mode="same")
    lo, hi = int(h * GAP_BAND[0]), int(np.ceil(h * GAP_BAND[1]))
    return lo + int(np.argmin(smooth[lo:hi]))


def split_rows(crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The crop's upper and lower rows, cut at :func:`row_gap` with :data:`ROW_OVERLAP`."""
    h = crop.shape[0]
    gap = row_gap(crop)
    pad = max(1, round(h * ROW_OVERLAP))
    return crop[: min(h, gap + pad)], crop[max(0, gap - pad) :]


def join_rows(upper: OcrResult, lower: OcrResult, whole: OcrResult, top_n: int) -> OcrResult:
    """One read of a two-row plate from its rows' reads; region from the whole plate's read.

    The rows are read independently, so the plate's probability is the product of theirs, and
    its candidates are the likeliest pairs of the rows' candidates."""
    pairs = heapq.nlargest(
        top_n,
        itertools.product(upper.candidates, lower.candidates),
        key=lambda p: p[0].confidence * p[1].confidence,
    )
    seen: set[str] = set()
    candidates: list[Candidate] = []
    for a, b in pairs:
        text = a.text + b.text
        if text not in seen:
            seen.add(text)
            candidates.append(Candidate(text, a.confidence * b.confidence))
    text = upper.text + lower.text
    return OcrResult(
        text=text,
        confidence=upper.confidence * lower.confidence,
        char_confidences=upper.char_confidences + lower.char_confidences,
        candidates=tuple(candidates),
        region=whole.region,
        region_confidence=whole.region_confidence,
        plate_class="partial" if "?" in text else "full",
    )
