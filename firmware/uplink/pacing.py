"""Pacing of the uplink: how much may be sent, and when. No I/O.

:class:`TokenBucket` paces the backlog drain (reads per second), :class:`ByteBudget` caps the
bytes per day, and :func:`plan` is the decision at the top of every worker step, a pure function
of a :class:`PaceInput` snapshot: wait, send alerts only (an alert kick during a backoff), or
send alerts and up to ``read_limit`` reads.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import date
from typing import Protocol, runtime_checkable

from drivers.clock import Clock
from firmware.link.state import LinkState

log = logging.getLogger(__name__)


@runtime_checkable
class BudgetLedger(Protocol):
    """Where the day's spent bytes outlive a restart (``storage.store.Store``: its counters)."""

    def uplink_bytes_spent(self, day: str) -> int: ...

    def add_uplink_bytes(self, day: str, n: int) -> None: ...


class TokenBucket:
    """Reads per second for the drain, with a burst of one batch."""

    def __init__(self, rate_per_s: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate_per_s, burst
        self._tokens, self._t = burst, now

    def available(self, now: float) -> int:
        self._tokens = min(self.burst, self._tokens + (now - self._t) * self.rate)
        self._t = now
        return int(self._tokens)

    def take(self, n: int, now: float) -> None:
        self.available(now)
        self._tokens -= n

    def seconds_until(self, n: int, now: float) -> float:
        have = self.available(now)
        return 0.0 if have >= n else (n - self._tokens) / self.rate


class ByteBudget:
    """Daily byte cap. The window follows the UTC date, but a new window opens at most once per
    20 h of monotonic time, so a wall clock stepped forward (bad RTC, NTP step) cannot grant a
    second day's budget; and after 24 h of monotonic time it opens regardless, so a clock
    stuck in the past cannot starve the uplink.

    With a ``ledger`` every spend is also added to the day's persisted count, and a new budget
    starts from what the ledger holds for today, so a restart does not grant a fresh budget. A
    ledger that fails is logged and the budget carries on in memory (the cap is a cost limit,
    not a reason to stop sending alerts)."""

    MIN_WINDOW_S = 20 * 3600
    MAX_WINDOW_S = 24 * 3600

    def __init__(self, cap: int, clock: Clock, ledger: BudgetLedger | None = None) -> None:
        self.cap = cap
        self._clock = clock
        self._ledger = ledger
        self._lock = threading.Lock()  # both uplink lanes spend
        self._day: date = clock.utcnow().date()
        self._opened = clock.monotonic()
        self.used = 0
        if ledger is not None:
            try:
                self.used = max(0, int(ledger.uplink_bytes_spent(self._day.isoformat())))
            except Exception as e:  # noqa: BLE001 - a sick store must not stop the uplink
                log.warning("byte budget not restored", extra={"error": str(e)})

    def _roll(self) -> None:
        mono = self._clock.monotonic()
        day = self._clock.utcnow().date()
        age = mono - self._opened
        if (day != self._day and age >= self.MIN_WINDOW_S) or age >= self.MAX_WINDOW_S:
            self.used, self._day, self._opened = 0, day, mono

    def spend(self, n: int) -> None:
        with self._lock:
            self._roll()
            self.used += n
            day = self._day
        if self._ledger is not None and n > 0:
            try:
                self._ledger.add_uplink_bytes(day.isoformat(), n)
            except Exception as e:  # noqa: BLE001 - as in __init__
                log.warning("byte budget spend not persisted", extra={"error": str(e)})

    def fraction_used(self) -> float:
        with self._lock:
            self._roll()
            return 0.0 if self.cap <= 0 else self.used / self.cap

    def exhausted(self) -> bool:
        return self.cap > 0 and self.fraction_used() >= 1.0


def batch_limit(state: LinkState, batch_max_reads: int) -> int:
    """Reads per batch for the link state: smaller on a ``degraded`` link, a probe when ``down``
    so no airtime is spent on a link that fails."""
    n = batch_max_reads
    if state is LinkState.DEGRADED:
        return max(1, n // 4)
    if state is LinkState.DOWN:
        return max(1, min(n, 10))
    return n


@dataclass(frozen=True)
class PaceInput:
    """What :func:`plan` decides from (monotonic seconds)."""

    now: float
    next_attempt: float  # the backoff: no regular attempt before this
    last_attempt: float
    kicked: bool  # an alert was stored since the last step
    alert_retry_min_s: float


@dataclass(frozen=True)
class Pace:
    """:func:`plan`'s answer: ``wait_s`` > 0 means send nothing now; otherwise ``only_alerts``
    says whether reads must wait (an alert kick during a backoff)."""

    wait_s: float
    only_alerts: bool


def plan(p: PaceInput) -> Pace:
    """Whether this step may send: during a backoff only an alert kick gets through, and not
    more often than every ``alert_retry_min_s``."""
    if p.now < p.next_attempt and not (
        p.kicked and p.now - p.last_attempt >= p.alert_retry_min_s
    ):
        return Pace(wait_s=p.next_attempt - p.now, only_alerts=True)
    return Pace(wait_s=0.0, only_alerts=p.now < p.next_attempt)
