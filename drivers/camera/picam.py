"""Raspberry Pi camera through picamera2 (libcamera)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from drivers.camera.base import CameraError, ThreadedCapture
from drivers.clock import Clock

log = logging.getLogger(__name__)


class Picamera2Camera(ThreadedCapture):
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
            except Exception as e:  # noqa: BLE001 - closing must not raise
                log.warning("picamera2 close failed", extra={"error": str(e)})
            self._cam = None
