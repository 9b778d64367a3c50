"""Multi-frame tracking of plates and vehicles: which observations belong to one pass.

Pure logic, no I/O. Time comes only from ``FrameResult.frame_time_s`` (the camera's monotonic
clock), so a replay at any speed tracks exactly as it would live.

Association, per frame, greedy by score over (observation, active track) pairs:

* each track's box is predicted forward with its last velocity (vehicles accelerate across the
  frame at 10 fps; a stale box would lose them after a missed frame);
* a pair is admissible if IoU with the prediction >= ``iou_min`` or the centre moved at most
  ``max_centre_jump`` box diagonals;
* score = IoU + proximity + ``text_weight`` x text similarity, so two plates side by side are
  told apart by what they read when geometry alone is ambiguous.

A track not matched for more than ``max_gap_s`` finishes. Finished plate tracks with at least
``min_frames`` observations are returned for the vote (:mod:`inference.vote`). Vehicle detections
are tracked the same way (geometry only); a vehicle track that never contained a plate, was seen
in >= ``no_plate_min_frames`` frames and reached ``no_plate_min_height_px`` becomes a
:class:`~inference.passes.NoPlatePass`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Literal

import numpy as np

from drivers.config_keys import setting
from inference.passes import NoPlatePass
from inference.records import Box, Detection, FrameResult, PlateObservation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackerSettings:
    """Tracker, vote and de-duplication settings (config section ``[tracker]``).

    ``max_gap_s`` (0.1..10): a track survives that long without a match (missed detections,
    occlusion). ``iou_min`` (0..1) and ``max_centre_jump`` (box diagonals, 0.1..10) gate
    association. ``min_frames`` (1..50): fewer observations are noise, not a pass.
    ``dedup_window_s`` (0..3600): the same text in the same direction within this window is one
    pass (a track split by an occlusion); ``dedup_max_edits`` (0..2) widens "same text".
    ``direction_mode``: ``approach`` (box growth: approaching/receding) for cameras looking
    along the road, ``lateral`` (left/right) for cameras looking across it.
    ``direction_min_change`` (0.01..2): relative change below which direction is ``unknown``.
    ``candidates`` (1..10): alternatives kept per read.
    """

    max_gap_s: float = setting(1.0, min=0.1, max=10.0,
                               doc="A track survives this long without a detection.")
    iou_min: float = setting(0.05, min=0.0, max=1.0)
    max_centre_jump: float = setting(1.5, min=0.1, max=10.0,
                                     doc="Largest jump between frames, in box diagonals.")
    text_weight: float = setting(0.3, min=0.0, max=1.0)
    min_frames: int = setting(2, min=1, max=50, doc="Fewer observations are noise.")
    dedup_window_s: float = setting(10.0, min=0.0, max=3600.0,
                                    doc="Same text, same direction within this window = one "
                                    "pass.")
    dedup_max_edits: int = setting(0, min=0, max=2)
    direction_mode: Literal["approach", "lateral"] = setting(
        "approach", choices=("approach", "lateral"))
    direction_min_change: float = setting(0.15, min=0.01, max=2.0)
    no_plate_min_frames: int = setting(5, min=1, max=100)
    no_plate_min_height_px: float = setting(120.0, min=10.0, max=4000.0)
    candidates: int = setting(5, min=1, max=10)
    max_active_tracks: int = setting(64, min=1, max=1024)


@dataclass(frozen=True, eq=False)
class TrackPoint:
    """One observation of a tracked plate, with the vehicle box it sat in (if any)."""

    frame_time_s: float
    observation: PlateObservation
    vehicle_box: Box | None = None


@dataclass(frozen=True, eq=False)
class PlateTrack:
    """A finished plate track: every observation of one plate during one pass."""

    track_id: int
    points: tuple[TrackPoint, ...]
    direction: str
    best_index: int
    best_frame: np.ndarray | None = field(default=None, repr=False)

    @property
    def first_seen_s(self) -> float:
        return self.points[0].frame_time_s

    @property
    def last_seen_s(self) -> float:
        return self.points[-1].frame_time_s


@dataclass(frozen=True, eq=False)
class TrackerOutput:
    plates: tuple[PlateTrack, ...] = ()
    no_plate: tuple[NoPlatePass, ...] = ()


def text_similarity(a: str, b: str) -> float:
    """0..1, how alike two reads are (unknown characters ``?`` never count as agreeing)."""
    if not a or not b:
        return 0.0
    return SequenceMatcher(None, a, b, autojunk=False).ratio() * (
        1.0 - 0.5 * (a.count("?") + b.count("?")) / (len(a) + len(b))
    )


def sharpness(crop: np.ndarray) -> float:
    """Variance of a 4-neighbour Laplacian of the grey crop (higher = sharper)."""
    if crop.size == 0 or crop.ndim < 2 or min(crop.shape[:2]) < 3:
        return 0.0
    grey = crop.astype(np.float32)
    if grey.ndim == 3:
        grey = grey.mean(axis=2)
    lap = grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4 * grey[1:-1, 1:-1]
    return float(lap.var())


def observation_quality(obs: PlateObservation) -> float:
    """How good a picture of the plate this is: resolution x sharpness x reader confidence.

    Plate height in pixels stands for resolution; sharpness saturates (s / (s + 100)) so a noisy
    crop cannot win on noise alone. This one function picks the best crop everywhere.
    """
    s = sharpness(obs.crop)
    return max(obs.detection.box.h, 1.0) * (s / (s + 100.0)) * max(obs.ocr.confidence, 1e-3)


def direction_of(boxes: list[Box], mode: str, min_change: float) -> str:
    """Direction of travel from a track's boxes (oldest first)."""
    if len(boxes) < 2:
        return "unknown"
    third = max(1, len(boxes) // 3)
    head, tail = boxes[:third], boxes[-third:]
    if mode == "lateral":
        width = float(np.median([b.w for b in boxes])) or 1.0
        shift = (np.median([b.cx for b in tail]) - np.median([b.cx for b in head])) / width
        if shift > min_change:
            return "right"
        if shift < -min_change:
            return "left"
        return "unknown"
    h0 = float(np.median([b.h for b in head])) or 1.0
    ratio = float(np.median([b.h for b in tail])) / h0
    if ratio > 1.0 + min_change:
        return "approaching"
    if ratio < 1.0 / (1.0 + min_change):
        return "receding"
    return "unknown"


class _Track:
    def __init__(self, track_id: int, t: float, box: Box) -> None:
        self.track_id = track_id
        self.times: list[float] = [t]
        self.boxes: list[Box] = [box]
        self.last_text = ""

    def predict(self, t: float) -> Box:
        last = self.boxes[-1]
        if len(self.boxes) < 2:
            return last
        dt = self.times[-1] - self.times[-2]
        if dt <= 0:
            return last
        prev = self.boxes[-2]
        k = (t - self.times[-1]) / dt
        dw, dh = (last.w - prev.w) * k, (last.h - prev.h) * k
        w, h = max(1.0, last.w + dw), max(1.0, last.h + dh)
        cx = last.cx + (last.cx - prev.cx) * k
        cy = last.cy + (last.cy - prev.cy) * k
        return Box(cx - w / 2, cy - h / 2, w, h)

    def add(self, t: float, box: Box) -> None:
        self.times.append(t)
        self.boxes.append(box)


class _PlateTrack(_Track):
    def __init__(self, track_id: int, t: float, point: TrackPoint) -> None:
        super().__init__(track_id, t, point.observation.detection.box)
        self.points: list[TrackPoint] = [point]
        self.last_text = point.observation.ocr.text
        self.best_index = 0
        self.best_quality = observation_quality(point.observation)
        self.best_frame: np.ndarray | None = None

    def add_point(self, point: TrackPoint) -> None:
        self.add(point.frame_time_s, point.observation.detection.box)
        self.points.append(point)
        self.last_text = point.observation.ocr.text or self.last_text


class _VehicleTrack(_Track):
    def __init__(self, track_id: int, t: float, box: Box) -> None:
        super().__init__(track_id, t, box)
        self.plate_tracks: set[int] = set()
        self.best_frame: np.ndarray | None = None
        self.best_frame_s = t
        self.best_h = box.h


def _diag(b: Box) -> float:
    return math.hypot(b.w, b.h) or 1.0


class Tracker:
    """Feed every :class:`FrameResult` in time order to :meth:`update`; call :meth:`flush` at end.

    Pass the frame image too (``update(result, image)``) if the pipeline wants the whole frame of
    each pass's best moment (the overview picture); only one frame per active track is kept.
    ``vehicle_frames`` off: vehicle tracks keep none (a caller that pictures no "vehicle with no
    plate" pass saves one frame per vehicle in view: the daemon's memory peaks were these).
    """

    def __init__(
        self, settings: TrackerSettings | None = None, vehicle_frames: bool = True
    ) -> None:
        self.settings = settings or TrackerSettings()
        self._vehicle_frames = vehicle_frames
        self._next_id = 1
        self._plates: list[_PlateTrack] = []
        self._vehicles: list[_VehicleTrack] = []
        self._finished_plate_ids: set[int] = set()
        self._last_t: float | None = None
        self.dropped_short = 0

    # -- association -------------------------------------------------------------------------
    def _new_id(self) -> int:
        tid = self._next_id
        self._next_id += 1
        return tid

    def _match(
        self, tracks: list[_Track], boxes: list[Box], texts: list[str], t: float
    ) -> dict[int, int]:
        """Greedy assignment observation index -> track index."""
        s = self.settings
        pairs: list[tuple[float, int, int]] = []
        for ti, track in enumerate(tracks):
            pred = track.predict(t)
            for oi, box in enumerate(boxes):
                iou = pred.iou(box)
                dist = math.hypot(pred.cx - box.cx, pred.cy - box.cy) / _diag(pred)
                if iou < s.iou_min and dist > s.max_centre_jump:
                    continue
                score = iou + 0.5 * max(0.0, 1.0 - dist / s.max_centre_jump)
                if texts[oi] and track.last_text:
                    score += s.text_weight * text_similarity(texts[oi], track.last_text)
                pairs.append((score, oi, ti))
        pairs.sort(key=lambda p: -p[0])
        used_o: set[int] = set()
        used_t: set[int] = set()
        out: dict[int, int] = {}
        for _, oi, ti in pairs:
            if oi in used_o or ti in used_t:
                continue
            used_o.add(oi)
            used_t.add(ti)
            out[oi] = ti
        return out

    @staticmethod
    def _containing(vehicles: tuple[Detection, ...], box: Box) -> int | None:
        best: int | None = None
        for i, v in enumerate(vehicles):
            b = v.box
            if b.holds_centre_of(box) and (best is None
                           or b.w * b.h < vehicles[best].box.w * vehicles[best].box.h):
                best = i
        return best

    # -- public ------------------------------------------------------------------------------
    def update(self, result: FrameResult, image: np.ndarray | None = None) -> TrackerOutput:
        t = result.frame_time_s
        if self._last_t is not None and t < self._last_t:
            log.warning(
                "frame time went backwards; tracks flushed",
                extra={"previous_s": self._last_t, "frame_time_s": t},
            )
            flushed = self.flush()
            self._last_t = t
            rest = self.update(result, image)
            return TrackerOutput(flushed.plates + rest.plates, flushed.no_plate + rest.no_plate)
        self._last_t = t
        finished = self._expire(t)

        vehicles = tuple(v for v in result.vehicles if v.label == "vehicle")
        v_boxes = [v.box for v in vehicles]
        v_match = self._match(list(self._vehicles), v_boxes, [""] * len(v_boxes), t)
        v_track_of: dict[int, _VehicleTrack] = {}
        for oi, box in enumerate(v_boxes):
            if oi in v_match:
                vt = self._vehicles[v_match[oi]]
                vt.add(t, box)
            else:
                vt = _VehicleTrack(self._new_id(), t, box)
                self._vehicles.append(vt)
            v_track_of[oi] = vt
            keep = self._vehicle_frames and image is not None
            if box.h > vt.best_h or (keep and vt.best_frame is None):
                vt.best_h = max(vt.best_h, box.h)
                vt.best_frame_s = t
                vt.best_frame = image if keep else None

        plates = result.plates
        p_boxes = [p.detection.box for p in plates]
        p_match = self._match(list(self._plates), p_boxes, [p.ocr.text for p in plates], t)
        for oi, obs in enumerate(plates):
            vi = self._containing(vehicles, obs.detection.box)
            point = TrackPoint(t, obs, vehicles[vi].box if vi is not None else None)
            if oi in p_match:
                pt = self._plates[p_match[oi]]
                pt.add_point(point)
                q = observation_quality(obs)
                if q > pt.best_quality:
                    pt.best_quality = q
                    pt.best_index = len(pt.points) - 1
                    pt.best_frame = image
            else:
                pt = _PlateTrack(self._new_id(), t, point)
                pt.best_frame = image
                self._plates.append(pt)
            if vi is not None:
                v_track_of[vi].plate_tracks.add(pt.track_id)
        self._cap_active()
        return finished

    def flush(self) -> TrackerOutput:
        """Finish every active track (shutdown, end of a replay)."""
        return self._expire(math.inf)

    @property
    def active(self) -> int:
        return len(self._plates) + len(self._vehicles)

    # -- finishing ---------------------------------------------------------------------------
    def _expire(self, t: float) -> TrackerOutput:
        s = self.settings
        plates_out: list[PlateTrack] = []
        keep_p: list[_PlateTrack] = []
        for pt in self._plates:
            if t - pt.times[-1] <= s.max_gap_s:
                keep_p.append(pt)
                continue
            if len(pt.points) < s.min_frames:
                self.dropped_short += 1
                continue
            self._finished_plate_ids.add(pt.track_id)
            boxes = [p.observation.detection.box for p in pt.points]
            plates_out.append(
                PlateTrack(
                    track_id=pt.track_id,
                    points=tuple(pt.points),
                    direction=direction_of(boxes, s.direction_mode, s.direction_min_change),
                    best_index=pt.best_index,
                    best_frame=pt.best_frame,
                )
            )
        self._plates = keep_p
        active_plate_ids = {p.track_id for p in keep_p}

        no_plate: list[NoPlatePass] = []
        keep_v: list[_VehicleTrack] = []
        for vt in self._vehicles:
            if t - vt.times[-1] <= s.max_gap_s:
                keep_v.append(vt)
                continue
            had_plate = bool(vt.plate_tracks & (self._finished_plate_ids | active_plate_ids))
            if (
                not had_plate
                and len(vt.boxes) >= s.no_plate_min_frames
                and vt.best_h >= s.no_plate_min_height_px
            ):
                largest = max(vt.boxes, key=lambda b: b.w * b.h)
                no_plate.append(
                    NoPlatePass(
                        track_id=vt.track_id,
                        first_seen_s=vt.times[0],
                        last_seen_s=vt.times[-1],
                        frames=len(vt.boxes),
                        direction=direction_of(vt.boxes, s.direction_mode, s.direction_min_change),
                        vehicle_box=largest,
                        best_frame_s=vt.best_frame_s,
                        best_frame=vt.best_frame,
                    )
                )
        self._vehicles = keep_v
        return TrackerOutput(tuple(plates_out), tuple(no_plate))

    def _cap_active(self) -> None:
        # A detector gone mad (hundreds of false boxes) must not grow memory without bound:
        # drop the stalest tracks beyond the cap.
        cap = self.settings.max_active_tracks
        for name in ("_plates", "_vehicles"):
            tracks = getattr(self, name)
            if len(tracks) > cap:
                tracks.sort(key=lambda tr: tr.times[-1], reverse=True)
                log.warning(
                    "too many active tracks; stalest dropped",
                    extra={"kind": name.strip("_"), "dropped": len(tracks) - cap},
                )
                setattr(self, name, tracks[:cap])
