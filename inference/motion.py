"""Motion gating: skip detection on frames where nothing moved.

The detector is the most expensive step; a pole camera looks at an empty road most of the time.
Comparing a tiny grey thumbnail of each frame with the previous one costs well under a
millisecond and lets the pipeline keep up with the camera's frame rate.
"""

from __future__ import annotations

import cv2
import numpy as np

THUMB_W, THUMB_H = 160, 90


def thumbnail(frame_rgb: np.ndarray) -> np.ndarray:
    """A 160x90 grey thumbnail as int16 (so differences don't wrap)."""
    grey = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (THUMB_W, THUMB_H), interpolation=cv2.INTER_AREA)
    return small.astype(np.int16)


class MotionGate:
    """Says whether a frame is worth running the detector on.

    A frame is worth it when its thumbnail differs from the last *detected* frame's by more than
    ``threshold`` (mean absolute grey difference, 0-255), when tracks are open (a slow vehicle
    must keep being observed), or when ``idle_every_s`` has passed (catches a vehicle that
    stopped in view, and proves the detector still works).
    """

    def __init__(self, threshold: float, idle_every_s: float) -> None:
        self.threshold = threshold
        self.idle_every_s = idle_every_s
        self._ref: np.ndarray | None = None
        self._last_detect_s: float | None = None

    def should_detect(self, frame_rgb: np.ndarray, frame_time_s: float, tracks_open: bool) -> bool:
        thumb = thumbnail(frame_rgb)
        moved = self._ref is None or float(np.mean(np.abs(thumb - self._ref))) > self.threshold
        idle_due = (
            self._last_detect_s is None or frame_time_s - self._last_detect_s >= self.idle_every_s
        )
        if moved or tracks_open or idle_due:
            self._ref = thumb
            self._last_detect_s = frame_time_s
            return True
        return False
