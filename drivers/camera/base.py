"""What every camera backend shares: settings, the frame record, the interface and errors."""

from __future__ import annotations

import abc
import logging
import queue
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol, Self, get_args, runtime_checkable

import numpy as np

from drivers.clock import Clock
from drivers.config_keys import setting
from drivers.errors import DeviceTimeout, DriverError
from drivers.resource import Closing

log = logging.getLogger(__name__)

Backend = Literal["replay", "picamera2", "v4l2", "gstreamer"]
#: Every camera backend, in the order the docs list them; ``open_camera`` has one opener each.
BACKENDS: tuple[Backend, ...] = get_args(Backend)
#: The backends that drive a real sensor (what an installer chooses); replay is the simulation.
SENSOR_BACKENDS: tuple[Backend, ...] = tuple(b for b in BACKENDS if b != "replay")


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


class CameraBase(Closing):
    """Shared by every backend: ``with camera:`` starts it and closes it (:class:`Closing`)."""

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        self.start()
        return self


# Rows converted per step in :func:`bgr_to_rgb`: OpenCV copies the source of an in-place
# conversion first, and a block this small stays under the 512 KiB mmap threshold
# (firmware/app/malloc_tuning.py), so the copy is a reused heap block, not a new mapping.
_SWAP_BLOCK_BYTES = 256 * 1024


def bgr_to_rgb(image: np.ndarray) -> np.ndarray:
    """The decoder's BGR image as RGB, converted in place a block of rows at a time: the caller
    hands over an array it owns (a fresh decode), so no second 2.7 MB buffer exists while a
    720p frame is read (cvtColor asked to work in place on the whole frame copies it whole).
    A view or a read-only array is copied instead."""
    if (image.ndim != 3 or image.shape[2] != 3 or not image.flags.c_contiguous
            or not image.flags.writeable):
        return np.ascontiguousarray(image[:, :, ::-1])
    import cv2  # the backends that decode already hold OpenCV

    rows = max(1, _SWAP_BLOCK_BYTES // max(1, image.shape[1] * 3))
    for r in range(0, image.shape[0], rows):
        block = image[r:r + rows]
        cv2.cvtColor(block, cv2.COLOR_BGR2RGB, dst=block)
    return image


def valid_image(image: object) -> bool:
    return (
        isinstance(image, np.ndarray)
        and image.dtype == np.uint8
        and image.ndim == 3
        and image.shape[2] == 3
        and image.shape[0] > 0
        and image.shape[1] > 0
    )


class ThreadedCapture(CameraBase):
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
