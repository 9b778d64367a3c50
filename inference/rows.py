"""Two-row plates (square European and British plates, Mercosur and US motorcycle plates).

The reader reads one line. Handed a two-row plate it reads one row, often surely (``6255BXX``
read ``BXX``), so a plate whose crop is short enough to hold two rows is also cut at the gap
between its rows and the rows put side by side, upper row first, as the one line the reader
knows (:func:`stitched`). Reading each row alone and joining the reads did worse: the reader
sees a line of two to four characters, unlike any plate it learnt, and its two reads' errors
multiply. With the true box given, on synthetic two-row plates pasted over the real dev
scenes' plates (``training/realscenes/two_rows.py``), Mercosur motorcycle / square European
plates read 51.7 / 49.5 % row by row against 66.8 / 74.0 % stitched (0 % as one line).
Pure: the engine does the reading and chooses between the reads.
"""

from __future__ import annotations

import cv2
import numpy as np

from inference.records import Box, OcrResult

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
# The rows' read replaces the one-line read when it is longer, no longer than a registration
# (191D12345; a US plate's upper "row" is its state name, TEXAS + 1032148) and at least this
# sure.
TWO_ROW_MIN_CONFIDENCE = 0.5
MAX_REGISTRATION_CHARS = 9
# A box at least this many times as wide as high read short may hold one row of a two-row plate
# boxed alone (the detector boxes a Mercosur motorcycle plate's lower row, ``5661``, surely):
# the box is also grown by :data:`ROW_REACH` of its height upwards and, separately, downwards,
# and each grown box read stitched (:func:`row_completions`).
ONE_ROW_MIN_ASPECT = TWO_ROW_MAX_ASPECT
# The other row is at most this many of the boxed row's heights away (a Mercosur plate's upper
# row and band together are about 1.1 of its lower row).
ROW_REACH = 1.2
MIN_ROW_PX = 8
# The blank between the stitched rows, as a fraction of their height: a word space, so the
# reader neither joins the rows' facing characters nor reads the rows' cut edges as one.
STITCH_GAP = 0.25


def may_have_two_rows(crop: np.ndarray, ocr: OcrResult) -> bool:
    """Whether a plate read as ``ocr`` from ``crop`` is worth reading with its rows side by
    side (:func:`stitched`): short enough to hold two rows, and read short as one line."""
    h, w = crop.shape[:2]
    return h >= MIN_CROP_ROWS and w <= TWO_ROW_MAX_ASPECT * h and len(ocr.text) <= ONE_ROW_MAX_CHARS


def may_be_one_row(box: Box, ocr: OcrResult) -> bool:
    """Whether a plate boxed as ``box`` and read as ``ocr`` may be one row of a two-row plate:
    a row's shape, read short."""
    return (
        box.h >= MIN_ROW_PX
        and box.w >= ONE_ROW_MIN_ASPECT * box.h
        and len(ocr.text) <= ONE_ROW_MAX_CHARS
    )


def row_completions(box: Box, frame_hw: tuple[int, int]) -> list[Box]:
    """``box`` grown by :data:`ROW_REACH` of its height upwards, and downwards, each clipped to
    the frame; a growth the frame leaves no room for is left out."""
    fh = float(frame_hw[0])
    reach = ROW_REACH * box.h
    out = []
    top = max(0.0, box.y - reach)
    if box.y - top >= 0.5 * box.h:
        out.append(Box(box.x, top, box.w, box.y + box.h - top))
    bottom = min(fh, box.y + box.h + reach)
    if bottom - (box.y + box.h) >= 0.5 * box.h:
        out.append(Box(box.x, box.y, box.w, bottom - box.y))
    return out


def rows_read_better(rows: OcrResult, line: OcrResult) -> bool:
    """Whether the rows' read (stitched) replaces the one-line read of the same crop: longer,
    no longer than a registration, and either sure enough or surer than the one-line read."""
    return len(line.text) < len(rows.text) <= MAX_REGISTRATION_CHARS and (
        rows.confidence >= TWO_ROW_MIN_CONFIDENCE or rows.confidence > line.confidence
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


def stitched(crop: np.ndarray) -> np.ndarray:
    """The crop's two rows (:func:`split_rows`) side by side as one line, each scaled to the
    taller one's height, with :data:`STITCH_GAP` of the plate's own colour between them."""
    upper, lower = split_rows(crop)
    h = max(upper.shape[0], lower.shape[0])

    def to_height(row: np.ndarray) -> np.ndarray:
        w = max(2, round(row.shape[1] * h / row.shape[0]))
        interp = cv2.INTER_AREA if row.shape[0] > h else cv2.INTER_LINEAR
        return cv2.resize(np.ascontiguousarray(row), (w, h), interpolation=interp)

    background = np.median(crop.reshape(-1, *crop.shape[2:]), axis=0).astype(crop.dtype)
    gap = np.empty((h, max(2, round(h * STITCH_GAP)), *crop.shape[2:]), crop.dtype)
    gap[...] = background
    return np.concatenate([to_height(upper), gap, to_height(lower)], axis=1)
