"""What of a frame the tracker may hold until a pass ends: the rows an overview can use.

The tracker keeps, for each active track, the frame of its best moment, so that the overview
picture can be cut when the pass ends. A whole 1280x720 frame is 2.7 MB, and on the sample
footage the tracks held up to four different ones at once (a plate track and the vehicle tracks
around it), which was most of the daemon's RSS swing above its floor (the soak's peaks: docs/
benchmarks.md). The daemon only ever cuts the overview from a held frame, and the overview
(``inference.privacy.overview_crop``) never starts above the cut line of the plate it is for,
so a held frame needs only the rows from the highest cut line of the frame's plates down.

The held copy has the frame's shape (the tracker's and the overview's coordinates stay the
frame's), zeros above that row. ``np.zeros`` of this size is a fresh anonymous mapping (the
daemon fixes glibc's mmap threshold at 512 KiB, ``firmware/app/malloc_tuning.py``) whose pages
the kernel provides only when written, so the zero rows cost no memory. They are also rows the
daemon would never store (windscreens, occupants); now it does not hold them either.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inference.privacy import cut_line_y
from inference.records import Box


def held_frame(image: np.ndarray, plate_boxes: Sequence[Box]) -> np.ndarray | None:
    """The copy of ``image`` a track may keep: rows from the highest cut line of
    ``plate_boxes`` down, zeros above; ``None`` for a frame without plates (the daemon makes
    no picture of a pass without a plate)."""
    if not plate_boxes:
        return None
    height = image.shape[0]
    top = min(height, max(0, min(cut_line_y(b) for b in plate_boxes)))
    held = np.zeros(image.shape, image.dtype)
    held[top:] = image[top:]
    return held
