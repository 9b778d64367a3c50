"""Cameras: one small interface, real backends (Pi camera, V4L2/GStreamer) and a replay camera.

Every backend delivers :class:`Frame` records (RGB, HxWx3 uint8) through the same four calls:
``start()``, ``read(timeout_s)``, ``stop()``, ``close()``. ``read`` either returns a frame within
``timeout_s`` or raises :class:`CameraTimeout`; a device that has failed raises
:class:`CameraError`. The daemon's watchdog relies on exactly that: a stalled camera is a timeout,
never a hang.

Vendor SDKs are imported lazily inside the constructors that need them (``picamera2`` only exists
on Raspberry Pi OS), so importing this module never probes hardware.

:func:`open_camera` is the one place a backend is chosen from :class:`CameraSettings`. When
``stall_file`` is set the chosen camera is wrapped in :class:`FaultyCamera`, which stops delivering
frames while that file exists: the hardware-in-the-loop tests stall the real daemon (a separate
process) by creating the file.
"""

from __future__ import annotations

import abc
import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self, get_args, runtime_checkable

import numpy as np

from drivers.clock import Clock
from drivers.config_keys import setting
from drivers.errors import DeviceTimeout, DriverError

log = logging.getLogger(__name__)

Backend = Literal["replay", "picamera2", "v4l2", "gstreamer"]
#: Every camera backend, in the order the docs list them (the one list; see :func:`open_camera`).
BACKENDS: tuple[Backend, ...] = get_args(Backend)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
MAX_REPLAY_LAG_S = 1.0


class CameraError(DriverError):
    """The camera failed: device missing, cannot be configured, or stopped working."""


class CameraTimeout(DeviceTimeout):
    """No frame arrived within the deadline (a stall); also a ``TimeoutError``."""


class CameraEndOfStream(CameraError):
    """A replay camera with ``loop=False`` has delivered its last frame."""


@dataclass(frozen=True, eq=False)
class Frame:
    """One captured picture.

    ``index`` counts delivered frames from 0 (per camera instance); ``monotonic_s`` is the
    injected clock's monotonic time at delivery; ``exposure_us``/``gain`` are what the sensor
    reported, ``None`` where the backend cannot tell.
    """

    image: np.ndarray
    index: int
    monotonic_s: float
    exposure_us: int | None = None
    gain: float | None = None
    source: str = ""


def _none_if_empty(value: str) -> str | None:
    return value or None


@dataclass(frozen=True)
class CameraSettings:
    """Camera configuration (validated into this by the firmware config module).

    ``source``: file/folder for ``replay``, device path (``/dev/video0``) or index for ``v4l2``,
    a GStreamer pipeline for ``gstreamer`` (empty: a Jetson ``nvarguscamerasrc`` pipeline is built
    from the other fields), ignored for ``picamera2`` (camera index 0 unless a digit is given).
    ``width``/``height``: 0 means "as the source delivers" for replay; other backends need them.
    ``shutter_max_us``: short exposures freeze moving plates; backends that can fix the exposure
    use it as the exposure time, gain makes up the rest (up to ``gain_max``).
    ``realtime``: replay paces frames at ``fps`` on the injected clock; ``False`` delivers as fast
    as they are read (benchmarks, tests).
    """

    backend: Backend = setting(
        "picamera2", choices=BACKENDS,
        doc="replay = file/folder replay (simulation); picamera2 = Raspberry Pi camera; "
        "v4l2 = /dev/videoN; gstreamer = a pipeline (Jetson CSI).")
    source: str = setting("", doc="File/folder (replay), device (v4l2), pipeline (gstreamer) "
                          "or camera index (picamera2). Empty = the bundled sample footage.")
    width: int = setting(1280, min=0, max=4096,
                         doc="Frame width in pixels (0 = as delivered, replay only).")
    height: int = setting(720, min=0, max=3040)
    fps: float = setting(10.0, min=1.0, max=120.0)
    loop: bool = setting(True, doc="Replay: start again at the end.")
    realtime: bool = setting(True, doc="Replay: pace frames at fps (false = as fast as read).")
    shutter_max_us: int = setting(2000, min=50, max=100000,
                                  doc="Longest exposure; short shutters freeze moving plates.")
    gain_max: float = setting(8.0, min=1.0, max=64.0)
    stall_file: str | None = setting("", convert=_none_if_empty,
                                     doc="Test hook: frames stop while this file exists.")


@runtime_checkable
class Camera(Protocol):
    def start(self) -> None: ...

    def read(self, timeout_s: float) -> Frame: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...

    def describe(self) -> dict[str, Any]: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class _CameraBase(abc.ABC):
    """Context-manager plumbing shared by every backend."""

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _bgr_to_rgb(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[:, :, ::-1])


def _valid_image(image: object) -> bool:
    return (
        isinstance(image, np.ndarray)
        and image.dtype == np.uint8
        and image.ndim == 3
        and image.shape[2] == 3
        and image.shape[0] > 0
        and image.shape[1] > 0
    )


class ReplayCamera(_CameraBase):
    """Replays a video file (anything OpenCV decodes) or a folder of still images.

    Loops when ``loop`` is set; otherwise raises :class:`CameraEndOfStream` after the last frame.
    With ``realtime`` the frames are paced at ``fps`` on the injected clock (frame *n* is due at
    ``start + n / fps``; a late reader gets frames back to back rather than skipping, so a replay
    is deterministic); more than ``MAX_REPLAY_LAG_S`` behind, the schedule restarts from now, as
    a live camera would carry on after a stall. Frames that fail to decode are skipped and
    counted (``corrupt_frames`` in :meth:`describe`); the first one is logged, later ones only
    counted, so a bad file cannot flood the log. If ``width``/``height`` are non-zero and
    differ, frames are resized.
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
                monotonic_s=self._clock.monotonic(),
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
            if image is not None and _valid_image(image):
                return _bgr_to_rgb(image)
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
        if 0 < total and self._pos < total:
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


class _ThreadedCapture(_CameraBase):
    """Runs a blocking ``grab()`` in a thread and hands the newest frame to ``read``.

    Blocking capture APIs (OpenCV, picamera2) have no per-call deadline; the thread makes
    ``read(timeout_s)`` honour one and keeps only the latest frame, so a slow consumer processes
    fresh pictures rather than a growing backlog.
    """

    name = "threaded"

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._slot: queue.Queue[Frame] = queue.Queue(maxsize=1)
        self._error: CameraError | None = None
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self._count = 0
        self._dropped = 0
        self._failures = 0

    @abc.abstractmethod
    def _grab(self) -> tuple[np.ndarray, int | None, float | None]: ...

    @abc.abstractmethod
    def _open(self) -> None: ...

    @abc.abstractmethod
    def _release(self) -> None: ...

    def start(self) -> None:
        if self._thread is not None:
            return
        self._open()
        self._error = None
        self._running.set()
        self._thread = threading.Thread(target=self._loop, name=f"camera-{self.name}", daemon=True)
        self._thread.start()

    def _put(self, item: Frame) -> None:
        try:
            self._slot.put_nowait(item)
        except queue.Full:
            try:
                self._slot.get_nowait()
                self._dropped += 1
            except queue.Empty:
                pass
            self._slot.put_nowait(item)

    def _loop(self) -> None:
        consecutive = 0
        while self._running.is_set():
            try:
                image, exposure, gain = self._grab()
            except CameraError as e:
                consecutive += 1
                self._failures += 1
                if consecutive >= 3:
                    # The last good frame (if not yet read) is still delivered; the error
                    # comes after it.
                    self._error = e
                    self._running.clear()
                    return
                continue
            consecutive = 0
            frame = Frame(
                image=image,
                index=self._count,
                monotonic_s=self._clock.monotonic(),
                exposure_us=exposure,
                gain=gain,
                source=self.name,
            )
            self._count += 1
            self._put(frame)

    def read(self, timeout_s: float) -> Frame:
        if self._thread is None:
            raise CameraError(f"{self.name} camera read before start()")
        try:
            return self._slot.get_nowait()
        except queue.Empty:
            pass
        if self._error is not None:
            raise CameraError(f"{self.name} capture failed: {self._error}") from self._error
        try:
            return self._slot.get(timeout=max(0.0, timeout_s))
        except queue.Empty:
            if self._error is not None:
                raise CameraError(f"{self.name} capture failed: {self._error}") from self._error
            raise CameraTimeout(f"{self.name}: no frame within {timeout_s:.3f} s") from None

    def stop(self) -> None:
        self._running.clear()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5.0)
        self._release()

    def close(self) -> None:
        self.stop()

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "frames_delivered": self._count,
            "frames_dropped": self._dropped,
            "grab_failures": self._failures,
        }


def jetson_pipeline(settings: CameraSettings, sensor_id: int = 0) -> str:
    """A GStreamer pipeline for a CSI camera on Jetson (``nvarguscamerasrc``), BGR into appsink.

    ``exposuretimerange`` is in nanoseconds; capping it at ``shutter_max_us`` keeps motion blur
    short, ``gainrange`` caps the analogue gain. ``drop=true max-buffers=1`` keeps latency low.
    """
    fps = max(1, round(settings.fps))
    shutter_ns = settings.shutter_max_us * 1000
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} "
        f'exposuretimerange="{min(34000, shutter_ns)} {shutter_ns}" '
        f'gainrange="1 {settings.gain_max:g}" ! '
        f"video/x-raw(memory:NVMM),width={settings.width},height={settings.height},"
        f"framerate={fps}/1 ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! "
        "video/x-raw,format=BGR ! appsink drop=true max-buffers=1 sync=false"
    )


class V4L2Camera(_ThreadedCapture):
    """OpenCV ``VideoCapture``: a V4L2 device (USB/CSI bridge) or a GStreamer pipeline (Jetson).

    ``api`` picks the OpenCV backend: ``"v4l2"``, ``"gstreamer"``, or ``"any"`` (which also opens
    video files, used by the tests to drive this exact code path without a device). For V4L2 the
    exposure is set manually to ``shutter_max_us`` (V4L2 exposure units are 100 µs).
    """

    def __init__(
        self,
        source: str,
        clock: Clock,
        *,
        api: Literal["v4l2", "gstreamer", "any"] = "v4l2",
        width: int = 1280,
        height: int = 720,
        fps: float = 30.0,
        shutter_max_us: int | None = None,
    ) -> None:
        super().__init__(clock)
        import cv2

        self.name = api
        self._cv2 = cv2
        self._source = source
        self._api = {
            "v4l2": cv2.CAP_V4L2,
            "gstreamer": cv2.CAP_GSTREAMER,
            "any": cv2.CAP_ANY,
        }[api]
        self._width, self._height, self._fps = width, height, fps
        self._shutter_max_us = shutter_max_us
        self._cap: Any = None

    def _open(self) -> None:
        cv2 = self._cv2
        target: str | int = int(self._source) if self._source.isdigit() else self._source
        cap = cv2.VideoCapture(target, self._api)
        if not cap.isOpened():
            raise CameraError(f"cannot open {self.name} source {self._source!r}")
        if self._api == cv2.CAP_V4L2:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._height)
            cap.set(cv2.CAP_PROP_FPS, self._fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            if self._shutter_max_us:
                cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, 1)  # V4L2_EXPOSURE_MANUAL
                cap.set(cv2.CAP_PROP_EXPOSURE, max(1, self._shutter_max_us // 100))
        self._cap = cap

    def _grab(self) -> tuple[np.ndarray, int | None, float | None]:
        ok, image = self._cap.read()
        if not ok or not _valid_image(image):
            raise CameraError(f"{self.name} read failed")
        return _bgr_to_rgb(image), None, None

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "source": self._source}


class Picamera2Camera(_ThreadedCapture):
    """Raspberry Pi camera through ``picamera2`` (libcamera).

    The video configuration asks for ``BGR888``, which libcamera lays out as R, G, B bytes, so the
    arrays are RGB without a copy. The exposure is fixed at ``shutter_max_us`` (motion blur of a
    plate at speed is what limits reads, not noise) and the frame duration pinned to ``fps``;
    analogue gain stays automatic, capped at ``gain_max`` by pinning it there whenever the AGC
    reports more.
    """

    name = "picamera2"

    def __init__(
        self,
        clock: Clock,
        *,
        camera_num: int = 0,
        width: int = 1280,
        height: int = 720,
        fps: float = 30.0,
        shutter_max_us: int = 2000,
        gain_max: float = 8.0,
    ) -> None:
        super().__init__(clock)
        try:
            from picamera2 import Picamera2  # type: ignore[import-not-found]
        except Exception as e:  # ImportError, or libcamera missing underneath it
            raise CameraError(
                "picamera2 is not available (install python3-picamera2 from Raspberry Pi OS apt)"
            ) from e
        self._factory: Callable[[int], Any] = Picamera2
        self._camera_num = camera_num
        self._size = (width, height)
        self._frame_us = int(1_000_000 / fps)
        self._shutter_us = min(shutter_max_us, self._frame_us)
        self._gain_max = gain_max
        self._gain_pinned = False
        self._cam: Any = None

    def _open(self) -> None:
        try:
            cam = self._factory(self._camera_num)
            config = cam.create_video_configuration(
                main={"size": self._size, "format": "BGR888"},
                controls={
                    "FrameDurationLimits": (self._frame_us, self._frame_us),
                    "ExposureTime": self._shutter_us,
                },
                buffer_count=4,
            )
            cam.configure(config)
            cam.start()
        except Exception as e:
            raise CameraError(f"picamera2 configuration failed: {e}") from e
        self._cam = cam

    def _grab(self) -> tuple[np.ndarray, int | None, float | None]:
        try:
            request = self._cam.capture_request()
            try:
                image = request.make_array("main")
                meta = request.get_metadata()
            finally:
                request.release()
        except Exception as e:
            raise CameraError(f"picamera2 capture failed: {e}") from e
        gain = meta.get("AnalogueGain")
        if gain is not None and gain > self._gain_max and not self._gain_pinned:
            self._cam.set_controls({"AnalogueGain": self._gain_max})
            self._gain_pinned = True
        exposure = meta.get("ExposureTime")
        return (
            np.ascontiguousarray(image[:, :, :3]),
            int(exposure) if exposure is not None else None,
            float(gain) if gain is not None else None,
        )

    def _release(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
                self._cam.close()
            except Exception as e:
                log.warning("picamera2 close failed", extra={"error": str(e)})
            self._cam = None


class FaultyCamera(_CameraBase):
    """Wraps a camera and injects faults: stalls, corrupt frames, device errors.

    Controlled from the test (``stall()``, ``corrupt_next()``, ``fail_next()``) or from outside
    the process through ``stall_file``: while that file exists no frame is delivered and ``read``
    times out exactly as a hung sensor would. Corrupt frames are random noise of the right shape
    (a garbled DMA buffer), or, with ``truncated=True``, an image of the wrong height.
    """

    def __init__(
        self,
        inner: Camera,
        clock: Clock,
        *,
        stall_file: str | os.PathLike[str] | None = None,
        seed: int = 0,
    ) -> None:
        self._inner = inner
        self._clock = clock
        self._stall_file = Path(stall_file) if stall_file else None
        self._stalled = False
        self._corrupt_left = 0
        self._truncated = False
        self._fail_left = 0
        self._rng = np.random.default_rng(seed)
        self._stall_timeouts = 0
        self._lock = threading.Lock()

    def stall(self, on: bool = True) -> None:
        with self._lock:
            self._stalled = on

    def corrupt_next(self, n: int = 1, *, truncated: bool = False) -> None:
        with self._lock:
            self._corrupt_left = n
            self._truncated = truncated

    def fail_next(self, n: int = 1) -> None:
        with self._lock:
            self._fail_left = n

    def _is_stalled(self) -> bool:
        with self._lock:
            if self._stalled:
                return True
        return self._stall_file is not None and self._stall_file.exists()

    def start(self) -> None:
        self._inner.start()

    def stop(self) -> None:
        self._inner.stop()

    def close(self) -> None:
        self._inner.close()

    def read(self, timeout_s: float) -> Frame:
        if self._is_stalled():
            self._clock.sleep(timeout_s)
            self._stall_timeouts += 1
            raise CameraTimeout(f"camera stalled (no frame within {timeout_s:.3f} s)")
        with self._lock:
            if self._fail_left > 0:
                self._fail_left -= 1
                raise CameraError("injected device failure")
        frame = self._inner.read(timeout_s)
        with self._lock:
            if self._corrupt_left <= 0:
                return frame
            self._corrupt_left -= 1
            h, w = frame.image.shape[:2]
            if self._truncated:
                h = max(1, h // 3)
            noise = self._rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        return Frame(
            image=noise,
            index=frame.index,
            monotonic_s=frame.monotonic_s,
            exposure_us=frame.exposure_us,
            gain=frame.gain,
            source=frame.source,
        )

    def describe(self) -> dict[str, Any]:
        return {
            **self._inner.describe(),
            "faulty": True,
            "stall_file": str(self._stall_file) if self._stall_file else None,
            "stall_timeouts": self._stall_timeouts,
        }


def open_camera(settings: CameraSettings, clock: Clock) -> Camera:
    """Build the camera ``settings`` describe (not started). Wraps it for ``stall_file``."""
    camera: Camera
    if settings.backend == "replay":
        camera = ReplayCamera(
            settings.source,
            clock,
            fps=settings.fps,
            loop=settings.loop,
            realtime=settings.realtime,
            width=settings.width,
            height=settings.height,
        )
    elif settings.backend == "picamera2":
        camera = Picamera2Camera(
            clock,
            camera_num=int(settings.source) if settings.source.isdigit() else 0,
            width=settings.width,
            height=settings.height,
            fps=settings.fps,
            shutter_max_us=settings.shutter_max_us,
            gain_max=settings.gain_max,
        )
    elif settings.backend in ("v4l2", "gstreamer"):
        source = settings.source
        if settings.backend == "gstreamer" and not source:
            source = jetson_pipeline(settings)
        camera = V4L2Camera(
            source,
            clock,
            api=settings.backend,
            width=settings.width,
            height=settings.height,
            fps=settings.fps,
            shutter_max_us=settings.shutter_max_us,
        )
    else:
        raise CameraError(f"unknown camera backend {settings.backend!r}")
    if settings.stall_file:
        camera = FaultyCamera(camera, clock, stall_file=settings.stall_file)
    log.info("camera opened", extra={"camera": camera.describe()})
    return camera
