"""Which plate design a crop shows, from its colours: the Mercosur plate's blue top band.

Brazil's Mercosur car plate (issued since 2018, ``ABC1D23``) is white under a blue band that runs
along its top with ``BRASIL`` in white; the older grey Brazilian plate (``ABC1234``) has no band.
The reader's region head says ``br-mercosur`` for plates lettered and laid out like it; the band
is the colour evidence beside that. Either alone is not enough for the engine
(``inference.engine.apply_country``): US state banners are often blue, and a grey or IR picture
shows no colour at all. Pure: crop in, number out.
"""

from __future__ import annotations

import cv2
import numpy as np

# OpenCV hue runs 0-180: 95-130 is blue. Saturation and value floors leave out the grey, white
# and dark parts of a plate and its surroundings.
BAND_HUE = (95, 130)
BAND_MIN_SATURATION = 90
BAND_MIN_VALUE = 40
# The band lies in the crop's top part (the crop has a margin above the plate)...
BAND_TOP = 0.55
# ...and is at least a tenth of the crop's height, blue across this share of its width. The
# engine's crops of the labelled plates of the val part's sets: rendered Mercosur plates pasted
# on it score 0.78-0.79 at the median and 284 of 285 reach 0.4; real grey Brazilian plates
# 0.00-0.04 (10 of 856 reach it: blue cars round them); European plates 0.00 (8 of 142); US
# plates 0.18-0.29 (63 of 230: blue state banners).
BAND_SHARE = 0.4


def blue_band(crop_rgb: np.ndarray) -> float:
    """How blue the bluest band of rows in the crop's top part is: the share of blue pixels in
    its rows, averaged over a tenth of the crop's height (0 for a grey crop)."""
    if crop_rgb.ndim != 3 or crop_rgb.shape[2] != 3 or crop_rgb.shape[0] < 4:
        return 0.0
    hsv = cv2.cvtColor(np.ascontiguousarray(crop_rgb), cv2.COLOR_RGB2HSV)
    hue, sat, val = hsv[:, :, 0], hsv[:, :, 1], hsv[:, :, 2]
    blue = (
        (hue >= BAND_HUE[0]) & (hue <= BAND_HUE[1])
        & (sat >= BAND_MIN_SATURATION) & (val >= BAND_MIN_VALUE)
    )
    rows = blue.mean(axis=1)
    height = rows.size
    top = rows[: max(1, int(np.ceil(BAND_TOP * height)))]
    k = max(2, round(0.1 * height))
    if top.size < k:
        return 0.0
    return float(np.convolve(top, np.ones(k) / k, "valid").max())


def shows_mercosur_band(crop_rgb: np.ndarray) -> bool:
    """Whether the crop shows a blue band across its top part, as a Mercosur plate does."""
    return blue_band(crop_rgb) >= BAND_SHARE
