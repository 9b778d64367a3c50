"""What of a frame the tracker may hold until a pass ends: the rows an overview can use.

The tracker keeps, for each active track, the frame of its best moment, so that the overview
picture can be cut when the pass ends. A whole 1280x720 frame is 2.7 MB, and on the sample
footage the tracks held up to four different ones at once (a plate track and the vehicle tracks
around it), which was most of the daemon's RSS swing above its floor (the soak's peaks: docs/
benchmarks.md). The daemon only ever cuts the overview from a held frame, and the overview of a
plate (``inference.privacy.overview_crop``) spans rows from the plate's cut line down to the
bottom of its vehicle's box, or a band below the plate without one. The tracker gives a plate
the smallest vehicle box that contains the plate's centre in the same frame; every such box is
counted here, so whichever one it picks, its rows are kept.

The held copy has the frame's shape (the tracker's and the overview's coordinates stay the
frame's), zeros outside those rows. ``np.zeros`` of this size is a fresh anonymous mapping (the
daemon fixes glibc's mmap threshold at 512 KiB, ``firmware/app/malloc_tuning.py``) whose pages
the kernel provides only when written, so the zero rows cost no memory. The rows above the cut
line are those the daemon never stores (windscreens, occupants); now it does not hold them
either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from inference.privacy import FALLBACK_BELOW_PLATES, cut_line_y
from inference.records import Box


def overview_rows(plate: Box, vehicles: Sequence[Box], height: int) -> tuple[int, int]:
    """Rows ``[top, bottom)`` that hold every overview the plate can get in this frame."""
    top = max(0, cut_line_y(plate))
    lowest = max([plate.y + plate.h * (1.0 + FALLBACK_BELOW_PLATES)]
                 + [v.y + v.h for v in vehicles if v.holds_centre_of(plate)])
    return min(top, height), min(height, max(0, math.ceil(lowest)))


def held_frame(image: np.ndarray, plate_boxes: Sequence[Box],
               vehicle_boxes: Sequence[Box] = ()) -> np.ndarray | None:
    """The copy of ``image`` a track may keep: the rows :func:`overview_rows` gives for each
    plate, zeros elsewhere; ``None`` for a frame without plates (the daemon makes no picture of
    a pass without a plate)."""
    if not plate_boxes:
        return None
    held = np.zeros(image.shape, image.dtype)
    for plate in plate_boxes:
        top, bottom = overview_rows(plate, vehicle_boxes, image.shape[0])
        held[top:bottom] = image[top:bottom]
    return held
