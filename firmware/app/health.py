"""In-process counters and the frame-progress heartbeat the watchdog pings depend on."""

from __future__ import annotations

import shutil
import threading
from collections import deque
from pathlib import Path
from typing import Any

from drivers.clock import Clock


class Counters:
    """Thread-safe named counters and gauges, read by `vigil status`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._gauges: dict[str, Any] = {}

    def inc(self, name: str, by: int = 1) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + by

    def set(self, name: str, value: Any) -> None:
        with self._lock:
            self._gauges[name] = value

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts.get(name, 0)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"counters": dict(self._counts), "gauges": dict(self._gauges)}


class Heartbeat:
    """Records when the pipeline last finished a frame; the watchdog pings only while fresh.

    A stalled camera or a hung inference call stops ``beat()``, so ``age_s()`` grows, the
    pings stop and systemd restarts the unit.
    """

    def __init__(self, clock: Clock, window: int = 50) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._last: float | None = None
        self._times: deque[float] = deque(maxlen=window)

    def beat(self) -> None:
        now = self.clock.monotonic()
        with self._lock:
            self._last = now
            self._times.append(now)

    def age_s(self) -> float | None:
        with self._lock:
            return None if self._last is None else self.clock.monotonic() - self._last

    def fps(self) -> float:
        with self._lock:
            if len(self._times) < 2:
                return 0.0
            span = self._times[-1] - self._times[0]
            return (len(self._times) - 1) / span if span > 0 else 0.0


def disk_usage(path: Path) -> dict[str, float]:
    try:
        u = shutil.disk_usage(path)
    except OSError:
        return {}
    return {"total_mb": u.total / 2**20, "free_mb": u.free / 2**20,
            "used_pct": 100.0 * (u.total - u.free) / u.total if u.total else 0.0}


def cpu_temperature_c() -> float | None:
    """SoC temperature from the thermal zone (Pi and Jetson expose it there); None if absent."""
    try:
        return int(Path("/sys/class/thermal/thermal_zone0/temp").read_text().strip()) / 1000.0
    except (OSError, ValueError):
        return None
