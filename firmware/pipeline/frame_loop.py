"""The frame loop: camera -> motion gate -> engine -> tracker -> vote -> hotlists -> store.

A read is *acknowledged* (printed, counted, alerted) only after the store has committed it. If
the store refuses a write (disk trouble, a corrupt file being replaced) the read waits in a small
retry queue and is written before any newer read; it is never dropped silently.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from drivers.camera import Camera, CameraEndOfStream, Frame
from drivers.clock import Clock
from drivers.errors import DeviceTimeout
from firmware.pipeline.held_frame import held_frame
from inference.errors import FrameError
from inference.hotlist_matcher import HotlistMatch
from inference.motion import MotionGate
from inference.passes import VotedRead
from inference.records import Box, FrameResult
from inference.tracker import PlateTrack, TrackerOutput
from inference.zone import Zone, in_frame
from storage.records import AlertRecord, ReadRecord

log = logging.getLogger(__name__)
REJECTIONS_LOGGED_EVERY = 100

JPEG_QUALITY = 85
MAX_PENDING = 1000


def encode_jpeg(image_rgb: np.ndarray | None) -> bytes | None:
    if image_rgb is None or image_rgb.size == 0:
        return None
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    return buf.tobytes() if ok else None


@dataclass(frozen=True)
class LocationFix:
    latitude: float | None
    longitude: float | None
    source: str  # "gps" | "site" | "none"


class Engine(Protocol):
    """The reading stack as the pipeline uses it (``inference.engine.PlateEngine``)."""

    def observe(self, frame_rgb: np.ndarray, frame_time_s: float = 0.0) -> FrameResult: ...

    def close(self) -> None: ...


class FrameTracker(Protocol):
    """Frames to finished passes (``inference.tracker.Tracker``)."""

    @property
    def active(self) -> int: ...

    def update(self, result: FrameResult, image: np.ndarray | None = None) -> TrackerOutput: ...

    def flush(self) -> TrackerOutput: ...


class Voter(Protocol):
    """One read per pass, or ``None`` for a duplicate (``firmware.app.wiring.PassVoter``)."""

    def vote(self, track: PlateTrack) -> VotedRead | None: ...


class Matcher(Protocol):
    """Hotlist matching (``inference.hotlist_matcher.HotlistMatcher``)."""

    def match(self, text: str, candidates: Iterable[str] = ()) -> list[HotlistMatch]: ...


class ReadStore(Protocol):
    """Where acknowledged reads go (``storage.store.Store``)."""

    def put_read(self, read: ReadRecord, alerts: Sequence[AlertRecord] = ()) -> None: ...


@dataclass
class PipelineParts:
    """What the pipeline needs, each replaceable in tests."""

    camera: Camera
    engine: Engine
    make_tracker: Callable[[], FrameTracker]
    make_voter: Callable[[], Voter]
    store: ReadStore
    clock: Clock
    camera_id: str
    location: Callable[[], LocationFix]
    clock_synced: Callable[[], bool]
    matcher: Callable[[], Matcher | None]
    overview: Callable[[np.ndarray | None, Box | None, Box], np.ndarray | None]
    emit: Callable[[dict[str, Any]], None]
    on_alert: Callable[[list[AlertRecord]], None] | None = None
    on_frame: Callable[[Frame], object] | None = None
    # (flags, offset from the GPS reference in s) of time sync for a read stamped now
    clock_stamp: Callable[[], tuple[tuple[str, ...], float | None]] | None = None


class Pipeline:
    def __init__(self, parts: PipelineParts, settings: Any, heartbeat: Any, counters: Any) -> None:
        self.p = parts
        self.settings = settings
        self.heartbeat = heartbeat
        self.counters = counters
        self._pending: deque[tuple[Any, tuple[Any, ...], dict[str, Any]]] = deque()
        self._last_read: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._gate = self._make_gate(settings)
        self._fault = threading.Event()
        self._reject_error: str | None = None
        self._reject_repeats = 0

    def inject_fault(self) -> None:
        """Test hook (enabled by VIGIL_FAULT_INJECTION=1): the next frame raises."""
        self._fault.set()

    @staticmethod
    def _make_gate(settings: Any) -> MotionGate | None:
        inf = settings.inference
        if not inf.motion_gate:
            return None
        return MotionGate(inf.motion_threshold, inf.idle_detect_every_s)

    @classmethod
    def from_components(cls, c: Any, heartbeat: Any) -> Pipeline:
        return cls(c.pipeline_parts, c.settings, heartbeat, c.counters)

    def apply_settings(self, settings: Any) -> None:
        with self._lock:
            self.settings = settings
            self._gate = self._make_gate(settings)

    def last_read_summary(self) -> dict[str, Any] | None:
        with self._lock:
            return dict(self._last_read) if self._last_read else None

    # ---- the worker ----------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        tracker = self.p.make_tracker()
        voter = self.p.make_voter()
        self.p.camera.start()
        try:
            while not stop.is_set():
                try:
                    frame = self.p.camera.read(timeout_s=0.5)
                except DeviceTimeout:
                    self.counters.inc("camera_timeouts")
                    self._retry_pending()
                    continue
                except CameraEndOfStream:
                    # A replay without loop has ended: finish the passes in view, then idle
                    # (no frames means no watchdog pings, which is the truth).
                    self._finish(tracker.flush(), voter)
                    self._retry_pending()
                    log.info("replay finished", extra={"frames": self.counters.get("frames")})
                    stop.wait()
                    break
                self.process(frame, tracker, voter)
                # Let the frame go before the next read: otherwise it lives on while the camera
                # decodes the next one (one more 2.7 MB buffer at a 720p peak).
                del frame
                self.heartbeat.beat()
        finally:
            # Drain: every open track becomes a read in the store before we stop.
            self._finish(tracker.flush(), voter)
            self._retry_pending()
            if self._pending:
                log.error("reads could not be stored before stop",
                          extra={"pending": len(self._pending)})

    def process(self, frame: Any, tracker: Any, voter: Any) -> None:
        if self._fault.is_set():
            self._fault.clear()
            raise RuntimeError("injected fault")
        self.counters.inc("frames")
        if self.p.on_frame is not None:
            self.p.on_frame(frame)
        gate = self._gate
        try:
            zone = _zone(self.settings.inference)
            seen, dx, dy = zone.cut(frame.image) if zone is not None else (frame.image, 0, 0)
            if gate is not None and not gate.should_detect(seen, frame.monotonic_s,
                                                           tracker.active > 0):
                self.counters.inc("frames_skipped_no_motion")
                self._finish(tracker.update(_empty_result(frame.monotonic_s)), voter)
                return
            result = in_frame(self.p.engine.observe(seen, frame.monotonic_s), dx, dy)
        except FrameError as e:
            self.counters.inc("frames_rejected")
            self._log_rejection(frame.index, str(e))
            return
        self.counters.inc("frames_detected")
        self.counters.inc("plates_observed", len(result.plates))
        held = held_frame(frame.image, [p.detection.box for p in result.plates],
                          [v.box for v in result.vehicles])
        self._finish(tracker.update(result, held), voter)
        self._retry_pending()

    def _log_rejection(self, index: int, error: str) -> None:
        """A rejected frame is logged; the same error again is logged every
        :data:`REJECTIONS_LOGGED_EVERY` frames with the count, not at the camera's rate (a zone
        outside the footage, a camera sending the same broken frame)."""
        if error == self._reject_error:
            self._reject_repeats += 1
            if self._reject_repeats % REJECTIONS_LOGGED_EVERY:
                return
        else:
            self._reject_error, self._reject_repeats = error, 0
        log.warning("frame rejected", extra={"frame": index, "error": error,
                                             "same_error_before": self._reject_repeats})

    # ---- passes -> reads -------------------------------------------------------------------
    def _finish(self, output: TrackerOutput, voter: Voter) -> None:
        for track in output.plates:
            voted = voter.vote(track)
            if voted is None:
                self.counters.inc("passes_suppressed")
                continue
            if voted.confidence < self.settings.inference.min_read_confidence:
                self.counters.inc("reads_low_confidence")
                log.info("pass below confidence threshold",
                         extra={"track": voted.track_id, "confidence": round(voted.confidence, 3)})
                continue
            self._store_read(voted)
        for np_pass in output.no_plate:
            self.counters.inc("vehicles_without_plate")
            log.info("vehicle passed with no readable plate",
                     extra={"track": np_pass.track_id, "direction": np_pass.direction,
                            "frames": np_pass.frames})

    def _store_read(self, voted: VotedRead) -> None:
        now = self.p.clock.utcnow()
        loc = self.p.location()
        flags, offset = self.p.clock_stamp() if self.p.clock_stamp is not None else ((), None)
        b = voted.box
        read = ReadRecord(
            read_id=str(uuid.uuid4()),
            captured_at=now,
            frame_monotonic_s=voted.best_frame_s,
            camera_id=self.p.camera_id,
            latitude=loc.latitude,
            longitude=loc.longitude,
            location_source=loc.source,
            direction=voted.direction,
            plate_text=voted.text,
            confidence=float(voted.confidence),
            char_confidences=tuple(float(c) for c in voted.char_confidences),
            candidates=tuple((c.text, float(c.confidence)) for c in voted.candidates),
            region=voted.region,
            plate_class=voted.plate_class,
            box=(b.x, b.y, b.x + b.w, b.y + b.h),
            frames_used=voted.frames_used,
            clock_synced=self.p.clock_synced(),
            clock_flags=flags, clock_offset_s=offset,
            crop_jpeg=encode_jpeg(voted.best_crop),
            overview_jpeg=encode_jpeg(self.p.overview(voted.best_frame, voted.vehicle_box, b)),
        )
        alerts: list[AlertRecord] = []
        matcher = self.p.matcher()
        if matcher is not None:
            for m in matcher.match(voted.text, tuple(c.text for c in voted.candidates)):
                alerts.append(AlertRecord(
                    alert_id=str(uuid.uuid4()), read_id=read.read_id,
                    hotlist_name=m.hotlist_name, hotlist_version=m.version,
                    matched_entry=m.entry.plate, rule=m.rule, reason=m.reason, priority=m.priority,
                    raised_at=now,
                ))
        line = {
            "event": "read", "read_id": read.read_id, "time": now.isoformat(),
            "camera_id": read.camera_id, "plate": read.plate_text,
            "confidence": round(read.confidence, 3), "region": read.region,
            "plate_class": read.plate_class, "direction": read.direction,
            "frames": read.frames_used,
            "candidates": [{"text": t, "confidence": round(c, 3)} for t, c in read.candidates],
            "location": {"lat": read.latitude, "lon": read.longitude,
                         "source": read.location_source},
            "alerts": [{"hotlist": a.hotlist_name, "entry": a.matched_entry, "rule": a.rule}
                       for a in alerts],
        }
        self._pending.append((read, tuple(alerts), line))
        self._retry_pending()

    def _retry_pending(self) -> None:
        while self._pending:
            read, alerts, line = self._pending[0]
            try:
                self.p.store.put_read(read, alerts)
            except Exception as e:  # keep the read, try again next frame
                self.counters.inc("store_write_failures")
                log.error("store write failed; read kept for retry",
                          extra={"read_id": read.read_id, "error": str(e),
                                 "pending": len(self._pending)})
                if len(self._pending) > MAX_PENDING:
                    raise
                return
            self._pending.popleft()
            self.counters.inc("reads")
            if alerts:
                self.counters.inc("alerts", len(alerts))
                if self.p.on_alert is not None:
                    self.p.on_alert(list(alerts))
            with self._lock:
                # Only the confidence: `vigil status` (the control socket) asks for no role, no
                # reason and writes no audit entry, so it must not become a live plate feed
                # (no plate, read id or time; reads are reached through storage.access).
                self._last_read = {"confidence": line["confidence"]}
            log.info("read stored", extra={"read_id": read.read_id, "alerts": len(alerts)})
            self.p.emit(line)


def _zone(inference: Any) -> Zone | None:
    """The configured reading zone, or None when ``zone_width`` is 0 (the whole frame)."""
    if not inference.zone_width:
        return None
    return Zone(inference.zone_x, inference.zone_y, inference.zone_width, inference.zone_height)


def _empty_result(t: float) -> FrameResult:
    return FrameResult(frame_time_s=t, plates=())
