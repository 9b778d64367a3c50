"""Privacy crops: what of a frame may be stored with a read.

Vigil never stores a whole frame. The overview picture keeps the vehicle's front or rear *below*
the bonnet/boot line; everything above a horizontal cut line is discarded, so windscreens, cabins
and occupants never reach storage.

The cut line is ``plate_top - k x plate_height`` with ``k = CUT_PLATE_HEIGHTS = 1.0``. Why 1.0:
the plate and the glass sit on the same, roughly vertical, face of the vehicle, so the plate
height is a scale bar that survives distance and (to first order) the camera's tilt. The
tightest case is the rear of a hatchback with the plate on the tailgate: the rear window's lower
edge is about 15-25 cm above the plate's top edge, i.e. 1.0-1.6 US plate heights (152 mm) or
1.4-2.3 EU plate heights (110 mm); fronts and saloon rears have 25-50 cm. One plate height keeps
the bumper, lights and plate surround and stays below the glass in all those cases; a smaller
``k`` is always allowed (more conservative), a larger one is refused above ``K_MAX``.

Pure numpy, no I/O.
"""

from __future__ import annotations

import numpy as np

from inference.errors import FrameError
from inference.records import Box

CUT_PLATE_HEIGHTS = 1.0
K_MAX = 1.5
# Without a vehicle box the overview spans this many plate widths either side of the plate
# centre (a car is ~3.5-4 US plate widths wide) and this many plate heights below its bottom.
FALLBACK_HALF_WIDTH_PLATES = 2.0
FALLBACK_BELOW_PLATES = 2.0
PLATE_PAD_MAX = 0.5
# Without a plate (a no-plate pass) only the bottom of the vehicle box is kept. The base of the
# windscreen is at about 0.65-0.75 of the height of a car or SUV seen from the front or rear and
# about 0.5 of a van or lorry cab; a camera looking down puts more of the roof and glass into
# the upper part of the box, never the lower. 0.35 stays below all of those.
NO_PLATE_KEEP_FRACTION = 0.35


def cut_line_y(plate_box: Box, k: float = CUT_PLATE_HEIGHTS) -> int:
    """First image row that may be kept (rows above it are cut). Rounded up: never a row more."""
    if not 0.0 <= k <= K_MAX:
        raise FrameError(f"privacy cut factor k={k} outside 0..{K_MAX}")
    return int(np.ceil(plate_box.y - k * plate_box.h))


def _check(frame: np.ndarray) -> None:
    if frame.ndim != 3 or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise FrameError(f"expected an HxWxC image, got shape {frame.shape}")


def overview_crop(
    frame: np.ndarray,
    vehicle_box: Box | None,
    plate_box: Box,
    k: float = CUT_PLATE_HEIGHTS,
) -> np.ndarray:
    """The vehicle's front/rear below the cut line (a copy; never a view into the frame).

    Horizontally the crop spans the vehicle box (or, without one, a band around the plate);
    vertically from the cut line down to the vehicle box's bottom. An empty result (plate at the
    very top of the frame with no room below the line) comes back as a 0-row array, not as an
    uncut picture.
    """
    _check(frame)
    fh, fw = frame.shape[:2]
    top = max(0, cut_line_y(plate_box, k))
    if vehicle_box is not None:
        x0, x1 = vehicle_box.x, vehicle_box.x + vehicle_box.w
        bottom = max(vehicle_box.y + vehicle_box.h, plate_box.y + plate_box.h)
    else:
        half = FALLBACK_HALF_WIDTH_PLATES * plate_box.w
        x0, x1 = plate_box.cx - half, plate_box.cx + half
        bottom = plate_box.y + plate_box.h * (1.0 + FALLBACK_BELOW_PLATES)
    left = max(0, int(np.floor(x0)))
    right = min(fw, int(np.ceil(x1)))
    bottom_i = min(fh, int(np.ceil(bottom)))
    if bottom_i <= top or right <= left:
        return np.zeros((0, max(0, right - left), frame.shape[2]), frame.dtype)
    return frame[top:bottom_i, left:right].copy()


def plate_crop(frame: np.ndarray, plate_box: Box, pad: float = 0.1) -> np.ndarray:
    """The plate with a margin of ``pad`` x its size on each side (0..PLATE_PAD_MAX), clamped.

    The upper margin never crosses the overview's cut line, so a padded plate crop cannot leak
    more than the overview does.
    """
    _check(frame)
    if not 0.0 <= pad <= PLATE_PAD_MAX:
        raise FrameError(f"plate crop pad {pad} outside 0..{PLATE_PAD_MAX}")
    fh, fw = frame.shape[:2]
    px, py = plate_box.w * pad, plate_box.h * pad
    top = max(0, int(np.floor(plate_box.y - py)), cut_line_y(plate_box))
    left = max(0, int(np.floor(plate_box.x - px)))
    right = min(fw, int(np.ceil(plate_box.x + plate_box.w + px)))
    bottom = min(fh, int(np.ceil(plate_box.y + plate_box.h + py)))
    if bottom <= top or right <= left:
        return np.zeros((0, 0, frame.shape[2]), frame.dtype)
    return frame[top:bottom, left:right].copy()


def no_plate_overview_crop(
    frame: np.ndarray, vehicle_box: Box, keep_fraction: float = NO_PLATE_KEEP_FRACTION
) -> np.ndarray:
    """For a pass with no plate: the bottom ``keep_fraction`` (0..0.35) of the vehicle box."""
    _check(frame)
    if not 0.0 < keep_fraction <= NO_PLATE_KEEP_FRACTION:
        raise FrameError(f"keep_fraction {keep_fraction} outside (0, {NO_PLATE_KEEP_FRACTION}]")
    fh, fw = frame.shape[:2]
    bottom_f = vehicle_box.y + vehicle_box.h
    top = max(0, int(np.ceil(bottom_f - keep_fraction * vehicle_box.h)))
    bottom = min(fh, int(np.ceil(bottom_f)))
    left = max(0, int(np.floor(vehicle_box.x)))
    right = min(fw, int(np.ceil(vehicle_box.x + vehicle_box.w)))
    if bottom <= top or right <= left:
        return np.zeros((0, max(0, right - left), frame.shape[2]), frame.dtype)
    return frame[top:bottom, left:right].copy()
