"""Replay camera: a video file or a folder of stills delivered as if from a sensor."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from drivers.camera.base import (
    CameraBase,
    CameraEndOfStream,
    CameraError,
    CameraTimeout,
    Frame,
    bgr_to_rgb,
    valid_image,
)
from drivers.clock import Clock

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
MAX_REPLAY_LAG_S = 1.0


class ReplayCamera(CameraBase):
    """Replays a video file (anything OpenCV decodes) or a folder of still images.

    Loops when ``loop`` is set; otherwise raises :class:`CameraEndOfStream` after the last frame.
    With ``realtime`` the frames are paced at ``fps`` on the injected clock (frame *n* is due at
    ``start + n / fps``; a late reader gets frames back to back rather than skipping, so a replay
    is deterministic); more than ``MAX_REPLAY_LAG_S`` behind, the schedule restarts from now, as
    a live camera would carry on after a stall. Frames that fail to decode are skipped and
    counted (``corrupt_frames`` in :meth:`describe`); the first one is logged, later ones only
    counted, so a bad file cannot flood the log. If ``width``/``height`` are non-zero and
    differ, frames are resized. Without ``realtime`` frames come as fast as they are read but
    carry the footage's own time (``start + n / fps``), so tracking sees the scene's timing: two
    cars 1.5 s apart stay 1.5 s apart however fast the replay runs.
    """

    def __init__(
        self,
        source: str | os.PathLike[str],
        clock: Clock,
        *,
        fps: float = 10.0,
        loop: bool = True,
        realtime: bool = True,
        width: int = 0,
        height: int = 0,
    ) -> None:
        import cv2  # noqa: F401  (fail here, not at first read, if OpenCV is missing)

        self._path = Path(source)
        if not self._path.exists():
            raise CameraError(f"replay source not found: {self._path}")
        if fps <= 0:
            raise CameraError(f"replay fps must be > 0, got {fps}")
        self._clock = clock
        self._fps = float(fps)
        self._loop = loop
        self._realtime = realtime
        self._size = (int(width), int(height)) if width > 0 and height > 0 else None
        self._files: list[Path] | None = None
        if self._path.is_dir():
            self._files = sorted(
                p for p in self._path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not self._files:
                raise CameraError(f"no images in replay folder {self._path}")
        self._cap: Any = None
        self._pos = 0  # position in the file/folder of the next frame to decode
        self._delivered = 0
        self._corrupt = 0
        self._loops = 0
        self._rebased = 0
        self._started = False
        self._t0 = 0.0
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._open_video()
            self._started = True
            self._t0 = self._clock.monotonic()

    def stop(self) -> None:
        with self._lock:
            self._started = False

    def close(self) -> None:
        with self._lock:
            self._started = False
            if self._cap is not None:
                self._cap.release()
                self._cap = None

    def _open_video(self) -> None:
        if self._files is not None:
            return
        import cv2

        if self._cap is not None:
            self._cap.release()
        # One decoder thread: replay is paced at a few fps, and every extra FFmpeg thread keeps
        # its own frame buffers resident (measured ~2 MB each at 720p).
        cap = cv2.VideoCapture(str(self._path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
        if not cap.isOpened():
            cap = cv2.VideoCapture(str(self._path))  # a backend other than FFmpeg
        if not cap.isOpened():
            raise CameraError(f"cannot open replay video {self._path}")
        self._cap = cap
        self._pos = 0

    # -- reading -----------------------------------------------------------------------------
    def read(self, timeout_s: float) -> Frame:
        with self._lock:
            if not self._started:
                raise CameraError("replay camera read before start()")
            if self._realtime:
                due = self._t0 + self._delivered / self._fps
                wait = due - self._clock.monotonic()
                if wait > timeout_s:
                    self._clock.sleep(timeout_s)
                    raise CameraTimeout(f"next replay frame due in {wait:.3f} s")
                if wait > 0:
                    self._clock.sleep(wait)
                elif wait < -MAX_REPLAY_LAG_S:
                    # Far behind (the reader stalled, or FaultyCamera held frames back): resume
                    # at the normal rate instead of bursting the whole backlog like no camera
                    # ever would.
                    self._t0 = self._clock.monotonic() - self._delivered / self._fps
                    self._rebased += 1
            image = self._next_image()
            if self._size is not None and image.shape[1::-1] != self._size:
                import cv2

                image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
            frame = Frame(
                image=image,
                index=self._delivered,
                monotonic_s=(
                    self._clock.monotonic()
                    if self._realtime
                    else self._t0 + self._delivered / self._fps
                ),
                source=f"replay:{self._path.name}",
            )
            self._delivered += 1
            return frame

    def _next_image(self) -> np.ndarray:
        # Bounded so a file that is corrupt from end to end fails instead of spinning forever.
        attempts = 0
        limit = 2 * (len(self._files) if self._files is not None else 10_000) + 2
        while attempts < limit:
            attempts += 1
            image, at_end = self._decode_next()
            if at_end:
                if not self._loop:
                    raise CameraEndOfStream(f"end of replay {self._path}")
                self._loops += 1
                self._pos = 0
                self._open_video()
                continue
            if image is not None and valid_image(image):
                return bgr_to_rgb(image)
            self._corrupt += 1
            if self._corrupt == 1:
                log.warning(
                    "replay frame cannot be decoded; skipping (further ones only counted)",
                    extra={"source": str(self._path), "position": self._pos - 1},
                )
        raise CameraError(f"replay source {self._path} yields no decodable frames")

    def _decode_next(self) -> tuple[np.ndarray | None, bool]:
        import cv2

        if self._files is not None:
            if self._pos >= len(self._files):
                return None, True
            path = self._files[self._pos]
            self._pos += 1
            return cv2.imread(str(path), cv2.IMREAD_COLOR), False
        assert self._cap is not None
        total = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        ok, image = self._cap.read()
        self._pos += 1
        if ok:
            return image, False
        # A failed read before the advertised end is a corrupt frame, not the end of the file.
        if total > 0 and self._pos < total:
            return None, False
        return None, True

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "replay",
            "source": str(self._path),
            "fps": self._fps,
            "loop": self._loop,
            "realtime": self._realtime,
            "frames_delivered": self._delivered,
            "corrupt_frames": self._corrupt,
            "loops": self._loops,
            "rebased": self._rebased,
            "position": self._pos,
        }
