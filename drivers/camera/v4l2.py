"""V4L2 and GStreamer cameras through OpenCV (USB cameras; Jetson CSI sensors)."""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np

from drivers.camera.base import (
    CameraError,
    CameraSettings,
    ThreadedCapture,
    bgr_to_rgb,
    valid_image,
)
from drivers.clock import Clock

log = logging.getLogger(__name__)


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


class V4L2Camera(ThreadedCapture):
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
        if not ok or not valid_image(image):
            raise CameraError(f"{self.name} read failed")
        return bgr_to_rgb(image), None, None

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "source": self._source}
