"""Scheduled maintenance: an integrity check, a retention purge and a budget check every
``purge_interval_s``
(monotonic clock), from the maintenance thread or whoever calls :meth:`Maintenance.run_if_due`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from drivers.clock import Clock
from storage.budget import Budget
from storage.errors import StoreClosed
from storage.health import HealthFlags
from storage.purge import Purge

log = logging.getLogger(__name__)


class Maintenance:
    def __init__(
        self,
        purge: Purge,
        budget: Budget,
        flags: HealthFlags,
        interval_s: float,
        clock: Clock,
        *,
        background: bool,
        check: Callable[[], object] | None = None,
    ) -> None:
        self._check = check
        self._purge = purge
        self._budget = budget
        self._flags = flags
        self._interval_s = interval_s
        self._clock = clock
        self._next = clock.monotonic() + interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(
                target=self._loop, name="store-maintenance", daemon=True
            )

    def start(self) -> None:
        if self._thread is not None:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join()

    def run_if_due(self) -> None:
        if self._clock.monotonic() < self._next:
            return
        self._next = self._clock.monotonic() + self._interval_s
        if self._check is not None:
            self._check()  # first: a damaged file is salvaged before anything is deleted
        self._purge.run()
        self._budget.enforce()

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.run_if_due()
            except StoreClosed:
                return
            except Exception as e:  # keep maintaining; the failure is visible in health()
                log.exception("store maintenance failed")
                self._flags.last_error = f"maintenance: {type(e).__name__}: {e}"
