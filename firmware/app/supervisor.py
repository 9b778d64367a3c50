"""Supervised worker threads: restart with exponential backoff, degrade instead of dying.

Each worker is a name plus a factory that builds a fresh ``run(stop_event)`` callable, so a
restart starts from clean state. A worker that raises is restarted after a backoff that doubles
(up to a cap); one that fails ``degrade_after`` times within ``failure_window_s`` is marked
``degraded`` and keeps being retried at the slowest rate, while every other worker carries on.
A worker that returns while the supervisor is still running counts as a failure too: none of our
workers is supposed to finish on its own.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from drivers.clock import Clock
from drivers.config_keys import setting
from firmware.backoff import exponential_s

log = logging.getLogger(__name__)

RunFn = Callable[[threading.Event], None]


class WorkerState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    DEGRADED = "degraded"
    STOPPED = "stopped"


#: systemd/vigil.service's TimeoutStopSec: SIGKILL this long after SIGTERM
#: (tests/test_systemd_units.py keeps the two equal).
UNIT_TIMEOUT_STOP_S = 5.0
#: What shutdown needs after the workers stopped (closing the store, the last audit entry).
STOP_MARGIN_S = 0.5


@dataclass(frozen=True)
class SupervisorSettings:
    """Config section ``[supervisor]``."""

    backoff_initial_s: float = setting(0.5, min=0.01, max=60.0)
    backoff_max_s: float = setting(30.0, min=0.1, max=3600.0)
    degrade_after: int = setting(5, min=1, max=1000,
                                 doc="Failures within failure_window_s that mark a worker "
                                 "degraded.")
    failure_window_s: float = setting(300.0, min=1.0, max=86400.0)
    stop_timeout_s: float = setting(4.0, min=0.5, max=UNIT_TIMEOUT_STOP_S - STOP_MARGIN_S,
                                    doc="How long shutdown waits for workers; at most 4.5 s, "
                                    "so the store is closed before systemd's SIGKILL "
                                    "(TimeoutStopSec=5s in our unit).")


@dataclass
class _Worker:
    name: str
    factory: Callable[[], RunFn]
    essential: bool
    state: WorkerState = WorkerState.STARTING
    restarts: int = 0
    failures: deque[float] = field(default_factory=deque)
    last_error: str | None = None
    thread: threading.Thread | None = None
    next_start_s: float = 0.0
    backoff_s: float = 0.0
    stop_event: threading.Event = field(default_factory=threading.Event)
    restart_requested: bool = False


class Supervisor:
    def __init__(self, clock: Clock, settings: SupervisorSettings | None = None) -> None:
        self.clock = clock
        self.settings = settings or SupervisorSettings()
        self._workers: dict[str, _Worker] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def stop_event(self) -> threading.Event:
        return self._stop

    def add(self, name: str, factory: Callable[[], RunFn], essential: bool = True) -> None:
        """Register a worker. ``essential`` workers being degraded makes the unit degraded."""
        if name in self._workers:
            raise ValueError(f"worker {name!r} already registered")
        self._workers[name] = _Worker(name, factory, essential)

    def start(self) -> None:
        for worker in self._workers.values():
            self._launch(worker)
        self._thread = threading.Thread(target=self._loop, name="supervisor", daemon=True)
        self._thread.start()

    def _launch(self, worker: _Worker) -> None:
        try:
            run = worker.factory()
        except Exception as e:  # noqa: BLE001 - a broken factory is a worker failure
            self._failed(worker, e)
            return
        worker.stop_event = threading.Event()
        if self._stop.is_set():
            worker.stop_event.set()
        thread = threading.Thread(
            target=self._body, args=(worker, run), name=f"worker-{worker.name}", daemon=True
        )
        worker.thread = thread
        worker.state = (
            WorkerState.DEGRADED if worker.state is WorkerState.DEGRADED else WorkerState.RUNNING
        )
        thread.start()

    def _body(self, worker: _Worker, run: RunFn) -> None:
        try:
            run(worker.stop_event)
        except Exception as e:  # supervision boundary
            log.exception("worker crashed", extra={"worker": worker.name})
            self._failed(worker, e)
            return
        if self._stop.is_set():
            return
        if worker.restart_requested:
            with self._lock:
                worker.restart_requested = False
                worker.thread = None
                worker.state = WorkerState.BACKOFF
                worker.next_start_s = self.clock.monotonic()
            self._wake.set()
            return
        self._failed(worker, RuntimeError("worker returned unexpectedly"))

    def _failed(self, worker: _Worker, error: BaseException) -> None:
        now = self.clock.monotonic()
        s = self.settings
        with self._lock:
            worker.last_error = f"{type(error).__name__}: {error}"
            worker.failures.append(now)
            while worker.failures and now - worker.failures[0] > s.failure_window_s:
                worker.failures.popleft()
            worker.backoff_s = exponential_s(s.backoff_initial_s, s.backoff_max_s,
                                             len(worker.failures) - 1)
            if len(worker.failures) >= s.degrade_after:
                if worker.state is not WorkerState.DEGRADED:
                    log.error(
                        "worker degraded",
                        extra={"worker": worker.name, "failures": len(worker.failures)},
                    )
                worker.state = WorkerState.DEGRADED
                worker.backoff_s = s.backoff_max_s
            else:
                worker.state = WorkerState.BACKOFF
            worker.next_start_s = now + worker.backoff_s
            worker.thread = None
        log.warning(
            "worker will restart",
            extra={"worker": worker.name, "backoff_s": worker.backoff_s,
                   "error": worker.last_error},
        )
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = self.clock.monotonic()
            due: list[_Worker] = []
            with self._lock:
                for w in self._workers.values():
                    waiting = w.state in (WorkerState.BACKOFF, WorkerState.DEGRADED)
                    if w.thread is None and waiting and now >= w.next_start_s:
                        w.restarts += 1
                        due.append(w)
            for w in due:
                log.info("worker restarting", extra={"worker": w.name, "restarts": w.restarts})
                self._launch(w)
            self._wake.wait(0.05)
            self._wake.clear()

    def restart(self, name: str) -> None:
        """Ask one worker to stop and start again from its factory (a config reload)."""
        with self._lock:
            w = self._workers[name]
            w.restart_requested = True
            w.stop_event.set()

    def stop(self) -> list[str]:
        """Signal every worker to stop and wait up to ``stop_timeout_s``; returns the laggards."""
        self._stop.set()
        with self._lock:
            for w in self._workers.values():
                w.stop_event.set()
        self._wake.set()
        deadline = self.clock.monotonic() + self.settings.stop_timeout_s
        laggards = []
        for w in self._workers.values():
            t = w.thread
            if t is not None:
                t.join(max(0.0, deadline - self.clock.monotonic()))
                if t.is_alive():
                    laggards.append(w.name)
            w.state = WorkerState.STOPPED
        if self._thread is not None:
            self._thread.join(1.0)
        if laggards:
            log.error("workers did not stop in time", extra={"workers": laggards})
        return laggards

    def snapshot(self) -> dict[str, dict[str, object]]:
        with self._lock:
            return {
                w.name: {
                    "state": w.state.value,
                    "restarts": w.restarts,
                    "recent_failures": len(w.failures),
                    "last_error": w.last_error,
                    "essential": w.essential,
                }
                for w in self._workers.values()
            }

    @property
    def degraded(self) -> bool:
        with self._lock:
            return any(
                w.state is WorkerState.DEGRADED and w.essential for w in self._workers.values()
            )
