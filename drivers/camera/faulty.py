"""A camera wrapper that injects faults: stalls, corrupt frames, device errors."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from drivers.camera.base import Camera, CameraBase, CameraError, CameraTimeout, Frame
from drivers.clock import Clock

log = logging.getLogger(__name__)


class FaultyCamera(CameraBase):
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
