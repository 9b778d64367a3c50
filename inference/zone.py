"""The reading zone: the part of each camera frame where plates are looked for. Pure.

The detector letterboxes whatever it is given into 640x384, so it sees a 1280x720 frame at half
size, the scale it was trained at, and a 4K frame at a sixth: a plate 80 px wide spans 13 input
pixels and is lost (26 % of plates found on real 4K frames, docs/models-detector.md). A pole
camera watches fixed lanes; the installer draws the zone round them (``[inference] zone_*``) and
the detector, the plate reads and the motion gate see only that part of the frame, at its native
pixels. Everything found is put back into frame pixels, so tracks, overviews and the stored boxes
are in the camera's frame as before. ``vigil eval --zone`` scores a zone on labelled photos.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from inference.errors import FrameError
from inference.records import Box, FrameResult


@dataclass(frozen=True)
class Zone:
    """A rectangle of frame pixels: left, top, width, height."""

    x: int
    y: int
    width: int
    height: int

    @classmethod
    def parse(cls, text: str) -> Zone:
        """``X,Y,W,H`` in frame pixels (the command line's spelling)."""
        try:
            x, y, w, h = (int(v) for v in text.split(","))
        except ValueError as e:
            raise ValueError(f"zone must be X,Y,WIDTH,HEIGHT in pixels, got {text!r}") from e
        if min(x, y) < 0 or min(w, h) < 2:
            raise ValueError(f"zone must start at >= 0 and be at least 2x2 pixels, got {text!r}")
        return cls(x, y, w, h)

    def holds(self, box: Box) -> bool:
        """Whether ``box`` lies wholly inside the zone."""
        return (
            self.x <= box.x
            and self.y <= box.y
            and box.x + box.w <= self.x + self.width
            and box.y + box.h <= self.y + self.height
        )

    def cut(self, image: np.ndarray) -> tuple[np.ndarray, int, int]:
        """The zone's pixels of ``image`` (a view, not a copy) and where they start.

        A zone reaching past the frame is cut at its edge (replay footage may be smaller than
        the camera it stands for); one entirely outside it is a :class:`FrameError`.
        """
        h, w = image.shape[:2]
        x0, y0 = min(self.x, w), min(self.y, h)
        x1, y1 = min(self.x + self.width, w), min(self.y + self.height, h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            raise FrameError(
                f"reading zone {self.x},{self.y} {self.width}x{self.height} is outside the "
                f"{w}x{h} frame"
            )
        return image[y0:y1, x0:x1], x0, y0


def in_frame(result: FrameResult, dx: int, dy: int) -> FrameResult:
    """``result`` found in a zone starting at ``(dx, dy)``, in the whole frame's pixels."""
    if dx == 0 and dy == 0:
        return result
    return replace(
        result,
        plates=tuple(replace(p, detection=p.detection.moved(dx, dy)) for p in result.plates),
        vehicles=tuple(v.moved(dx, dy) for v in result.vehicles),
    )


class ZonedEngine:
    """An engine that reads only ``zone`` of each frame, reporting in frame pixels."""

    def __init__(self, engine: Any, zone: Zone) -> None:
        self.engine = engine
        self.zone = zone

    def observe(self, frame_rgb: np.ndarray, frame_time_s: float = 0.0) -> FrameResult:
        seen, dx, dy = self.zone.cut(frame_rgb)
        return in_frame(self.engine.observe(seen, frame_time_s), dx, dy)

    def close(self) -> None:
        self.engine.close()
