"""Records for one vehicle pass: what the tracker and the per-pass vote hand to the pipeline.

Times are the frames' ``frame_time_s`` (the camera's monotonic clock), never wall time; the
pipeline adds wall time when it stores a read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from inference.records import Box, Candidate

# Direction of travel, from the track's motion (see inference.tracker.direction_of).
DIRECTIONS = ("approaching", "receding", "left", "right", "unknown")


@dataclass(frozen=True, eq=False)
class VotedRead:
    """One read per pass: the character-level vote over every frame the plate was read in.

    ``confidence`` is the weakest per-position share in ``char_confidences`` (a position's share =
    confidence-weighted votes for the winning character / weight of all reads covering it);
    ``candidates`` are the top alternatives, best first (``candidates[0].text == text``), each
    with its own weakest share. ``box``/``best_crop``/``best_frame_index`` come from the
    best observation (sharp, large, confident); ``best_frame_index`` indexes the track's frames
    and ``best_frame_s`` is that frame's time. ``best_frame`` is the whole frame at that moment
    when the caller handed frames to the tracker (for the privacy-cropped overview), else None.
    """

    track_id: int
    text: str
    confidence: float
    char_confidences: tuple[float, ...]
    candidates: tuple[Candidate, ...]
    region: str | None
    region_confidence: float
    plate_class: str
    box: Box
    best_crop: np.ndarray = field(repr=False)
    best_frame_index: int
    best_frame_s: float
    first_seen_s: float
    last_seen_s: float
    frames_used: int
    direction: str
    vehicle_box: Box | None = None
    best_frame: np.ndarray | None = field(default=None, repr=False)


@dataclass(frozen=True, eq=False)
class NoPlatePass:
    """A vehicle that passed without any plate being read (no plate, covered, or unreadable)."""

    track_id: int
    first_seen_s: float
    last_seen_s: float
    frames: int
    direction: str
    vehicle_box: Box  # the largest box of the track
    best_frame_s: float
    best_frame: np.ndarray | None = field(default=None, repr=False)
