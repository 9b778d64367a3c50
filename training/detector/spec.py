"""The detector's tensor contract, shared by training code that must not import Keras.

The run-time code reads the same facts from the model's manifest (``labels``), not from here.
"""

from __future__ import annotations

INPUT_HW = (384, 640)  # letterboxed frame, top-left aligned: 1280x720 halves, 1920x1080 / 3
STRIDE = 4
GRID_HW = (INPUT_HW[0] // STRIDE, INPUT_HW[1] // STRIDE)
CLASSES = ("plate", "vehicle")
