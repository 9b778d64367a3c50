"""Injected clocks: monotonic time for deadlines, UTC wall time for records.

Nothing in Vigil reads ``time.time()`` ad hoc; components take a :class:`Clock` so tests can
drive time explicitly.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""

    def utcnow(self) -> datetime:
        """Timezone-aware UTC wall time (may jump if the OS clock is stepped)."""

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds`` of this clock's time."""


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def utcnow(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that only moves when told to (``advance``) or when something sleeps on it."""

    def __init__(self, start: datetime | None = None, monotonic_start: float = 1000.0) -> None:
        self._wall = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = monotonic_start
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def utcnow(self) -> datetime:
        with self._lock:
            return self._wall

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._mono += max(0.0, seconds)
            self._wall += timedelta(seconds=max(0.0, seconds))

    def step_wall(self, delta: timedelta) -> None:
        """Jump the wall clock only (an NTP step or a bad RTC), monotonic time unchanged."""
        with self._lock:
            self._wall += delta
