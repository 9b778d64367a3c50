"""Link state of the cellular uplink: ``up`` / ``degraded`` / ``down``.

The core is a pure function, :func:`step`, from (snapshot, event) to (snapshot, transition):
no I/O, no clock reads, so every path is a fast unit test. :class:`LinkStateMachine` wraps it
with a lock, the injected clock, logging of transitions and a short history for ``vigil status``.

Inputs are request results from the uplink (success with latency, failure with a reason) and
modem reports (registered or not, signal in dBm). The rules, in words:

* a failed request or a slow one (latency above ``slow_latency_s``) makes an ``up`` link
  ``degraded``; ``fail_to_down`` consecutive failures make it ``down``;
* a modem that reports no registration makes it ``down`` at once (no request can succeed);
* a weak signal (below ``weak_signal_dbm``) caps the state at ``degraded``;
* ``ok_to_up`` consecutive fast successes with a usable signal bring it back ``up``;
  any success lifts ``down`` to at least ``degraded``.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from drivers.clock import Clock
from firmware.errors import FirmwareError

log = logging.getLogger(__name__)


class LinkState(StrEnum):
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"


class LinkStateError(FirmwareError, ValueError):
    """An event the state machine does not know, or bad thresholds."""


@dataclass(frozen=True)
class LinkThresholds:
    fail_to_down: int = 3
    ok_to_up: int = 2
    slow_latency_s: float = 5.0
    weak_signal_dbm: int = -105

    def __post_init__(self) -> None:
        if self.fail_to_down < 1 or self.ok_to_up < 1:
            raise LinkStateError("fail_to_down and ok_to_up must be at least 1")
        if self.slow_latency_s <= 0:
            raise LinkStateError("slow_latency_s must be positive")


@dataclass(frozen=True)
class RequestOk:
    latency_s: float


@dataclass(frozen=True)
class RequestFailed:
    reason: str  # "timeout", "connect", "tls", "http_5xx", "reset", ...


@dataclass(frozen=True)
class ModemReport:
    registered: bool
    signal_dbm: int | None  # None: the modem does not know (CSQ 99)


LinkEvent = RequestOk | RequestFailed | ModemReport


@dataclass(frozen=True)
class LinkSnapshot:
    state: LinkState = LinkState.DOWN  # nothing is proven at boot
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    registered: bool | None = None
    signal_dbm: int | None = None
    last_reason: str = "boot"


@dataclass(frozen=True)
class Transition:
    old: LinkState
    new: LinkState
    reason: str


def _signal_weak(snap: LinkSnapshot, th: LinkThresholds) -> bool:
    return snap.signal_dbm is not None and snap.signal_dbm < th.weak_signal_dbm


def step(
    snap: LinkSnapshot, event: LinkEvent, th: LinkThresholds
) -> tuple[LinkSnapshot, Transition | None]:
    """Pure transition function. Returns the new snapshot and the transition, if any."""
    state = snap.state
    if isinstance(event, RequestOk):
        slow = event.latency_s > th.slow_latency_s
        succ = 0 if slow else snap.consecutive_successes + 1
        snap = replace(snap, consecutive_failures=0, consecutive_successes=succ)
        if slow:
            new, reason = (
                (LinkState.DEGRADED, f"slow response {event.latency_s:.1f}s")
                if state is not LinkState.DEGRADED
                else (state, snap.last_reason)
            )
        elif _signal_weak(snap, th):
            new, reason = LinkState.DEGRADED, f"weak signal {snap.signal_dbm} dBm"
        elif state is LinkState.DOWN:
            new, reason = LinkState.DEGRADED, "request succeeded"
            if succ >= th.ok_to_up:
                new = LinkState.UP
        elif state is LinkState.DEGRADED and succ >= th.ok_to_up:
            new, reason = LinkState.UP, f"{succ} requests succeeded"
        else:
            new, reason = state, snap.last_reason
    elif isinstance(event, RequestFailed):
        fails = snap.consecutive_failures + 1
        snap = replace(snap, consecutive_failures=fails, consecutive_successes=0)
        if fails >= th.fail_to_down:
            new, reason = LinkState.DOWN, f"{fails} requests failed ({event.reason})"
        elif state is LinkState.UP:
            new, reason = LinkState.DEGRADED, f"request failed ({event.reason})"
        else:
            new, reason = state, snap.last_reason
    elif isinstance(event, ModemReport):
        snap = replace(snap, registered=event.registered, signal_dbm=event.signal_dbm)
        if not event.registered:
            new, reason = LinkState.DOWN, "modem not registered"
            snap = replace(snap, consecutive_successes=0)
        elif state is LinkState.UP and _signal_weak(snap, th):
            new, reason = LinkState.DEGRADED, f"weak signal {event.signal_dbm} dBm"
        else:
            # Registration alone proves nothing about the data path: only requests lift state.
            new, reason = state, snap.last_reason
    else:  # pragma: no cover - the type union is closed, this guards untyped callers
        raise LinkStateError(f"unknown link event {event!r}")
    if new is state:
        return replace(snap, state=state), None
    return replace(snap, state=new, last_reason=reason), Transition(state, new, reason)


@dataclass(frozen=True)
class TransitionRecord:
    at: datetime
    old: LinkState
    new: LinkState
    reason: str


@dataclass(frozen=True)
class LinkStatus:
    """The link as `vigil status` shows it (``as_dict()`` is the JSON view)."""

    state: LinkState
    reason: str
    seconds_in_state: float
    consecutive_failures: int
    registered: bool | None
    signal_dbm: int | None
    transitions: tuple[TransitionRecord, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "state": self.state.value,
            "reason": self.reason,
            "seconds_in_state": self.seconds_in_state,
            "consecutive_failures": self.consecutive_failures,
            "registered": self.registered,
            "signal_dbm": self.signal_dbm,
            "transitions": [
                {"at": r.at.isoformat(), "from": r.old.value, "to": r.new.value, "reason": r.reason}
                for r in self.transitions
            ],
        }


class LinkStateMachine:
    """Thread-safe holder of the link snapshot; logs every transition.

    Fed by the uplink worker (request results) and the modem supervisor (signal reports);
    read by both and by ``vigil status``.
    """

    def __init__(
        self, clock: Clock, thresholds: LinkThresholds | None = None, history: int = 20
    ) -> None:
        self._clock = clock
        self.thresholds = thresholds or LinkThresholds()
        self._snap = LinkSnapshot()
        self._lock = threading.Lock()
        self._history: deque[TransitionRecord] = deque(maxlen=history)
        self._since_mono = clock.monotonic()

    @property
    def state(self) -> LinkState:
        with self._lock:
            return self._snap.state

    @property
    def snapshot(self) -> LinkSnapshot:
        with self._lock:
            return self._snap

    def seconds_in_state(self) -> float:
        with self._lock:
            return self._clock.monotonic() - self._since_mono

    def feed(self, event: LinkEvent) -> Transition | None:
        with self._lock:
            self._snap, tr = step(self._snap, event, self.thresholds)
            if tr is not None:
                self._since_mono = self._clock.monotonic()
                self._history.append(
                    TransitionRecord(self._clock.utcnow(), tr.old, tr.new, tr.reason)
                )
        if tr is not None:
            level = logging.WARNING if tr.new is LinkState.DOWN else logging.INFO
            log.log(
                level,
                "link %s -> %s: %s",
                tr.old.value,
                tr.new.value,
                tr.reason,
                extra={"link_old": tr.old.value, "link_new": tr.new.value, "reason": tr.reason},
            )
        return tr

    def on_success(self, latency_s: float) -> Transition | None:
        return self.feed(RequestOk(latency_s))

    def on_failure(self, reason: str) -> Transition | None:
        return self.feed(RequestFailed(reason))

    def on_modem(self, registered: bool, signal_dbm: int | None) -> Transition | None:
        return self.feed(ModemReport(registered, signal_dbm))

    def status(self) -> LinkStatus:
        with self._lock:
            snap = self._snap
            hist = tuple(self._history)
            in_state = self._clock.monotonic() - self._since_mono
        return LinkStatus(snap.state, snap.last_reason, round(in_state, 1),
                          snap.consecutive_failures, snap.registered, snap.signal_dbm, hist)
