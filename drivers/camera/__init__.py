"""Cameras: one small interface, real backends (Pi camera, V4L2/GStreamer) and a replay camera.

One module per backend (:mod:`.replay`, :mod:`.picam`, :mod:`.v4l2`), the shared parts in
:mod:`.base`, fault injection in :mod:`.faulty`.

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

import logging
from collections.abc import Callable

from drivers.camera.base import (
    BACKENDS,
    SENSOR_BACKENDS,
    Backend,
    Camera,
    CameraEndOfStream,
    CameraError,
    CameraSettings,
    CameraTimeout,
    Frame,
)
from drivers.camera.faulty import FaultyCamera
from drivers.camera.picam import Picamera2Camera
from drivers.camera.replay import IMAGE_SUFFIXES, ReplayCamera
from drivers.camera.v4l2 import V4L2Camera, jetson_pipeline
from drivers.clock import Clock

__all__ = ["BACKENDS", "IMAGE_SUFFIXES", "OPENERS", "SENSOR_BACKENDS", "Backend", "Camera",
           "CameraEndOfStream", "CameraError", "CameraSettings", "CameraTimeout", "FaultyCamera",
           "Frame", "Picamera2Camera", "ReplayCamera", "V4L2Camera", "jetson_pipeline",
           "open_camera"]

log = logging.getLogger(__name__)


def _replay(settings: CameraSettings, clock: Clock) -> Camera:
    return ReplayCamera(settings.source, clock, fps=settings.fps, loop=settings.loop,
                        realtime=settings.realtime, width=settings.width, height=settings.height)


def _picamera2(settings: CameraSettings, clock: Clock) -> Camera:
    return Picamera2Camera(clock,
                           camera_num=int(settings.source) if settings.source.isdigit() else 0,
                           width=settings.width, height=settings.height, fps=settings.fps,
                           shutter_max_us=settings.shutter_max_us, gain_max=settings.gain_max)


def _v4l2(settings: CameraSettings, clock: Clock) -> Camera:
    return V4L2Camera(settings.source, clock, api="v4l2", width=settings.width,
                      height=settings.height, fps=settings.fps,
                      shutter_max_us=settings.shutter_max_us)


def _gstreamer(settings: CameraSettings, clock: Clock) -> Camera:
    return V4L2Camera(settings.source or jetson_pipeline(settings), clock, api="gstreamer",
                      width=settings.width, height=settings.height, fps=settings.fps,
                      shutter_max_us=settings.shutter_max_us)


#: The one place a backend name meets its code (every name in ``BACKENDS`` has an opener).
OPENERS: dict[Backend, Callable[[CameraSettings, Clock], Camera]] = {
    "replay": _replay,
    "picamera2": _picamera2,
    "v4l2": _v4l2,
    "gstreamer": _gstreamer,
}


def open_camera(settings: CameraSettings, clock: Clock) -> Camera:
    """Build the camera ``settings`` describe (not started). Wraps it for ``stall_file``."""
    opener = OPENERS.get(settings.backend)
    if opener is None:
        raise CameraError(f"unknown camera backend {settings.backend!r}")
    camera = opener(settings, clock)
    if settings.stall_file:
        camera = FaultyCamera(camera, clock, stall_file=settings.stall_file)
    log.info("camera opened", extra={"camera": camera.describe()})
    return camera
