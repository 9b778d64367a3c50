"""Exponential backoff, written once: worker restarts (no jitter) and uplink retries (jitter)."""

from __future__ import annotations

import random


def exponential_s(initial_s: float, max_s: float, n: int) -> float:
    """The n-th delay (n from 0): ``initial_s * 2**n``, capped at ``max_s``."""
    return min(max_s, initial_s * float(2 ** min(max(n, 0), 30)))


class Backoff:
    """Exponential backoff with equal jitter: the n-th delay lies in [d/2, d],
    d = :func:`exponential_s`. Jitter spreads a fleet's retries after a cell outage."""

    def __init__(self, initial_s: float, max_s: float, rng: random.Random) -> None:
        self.initial_s, self.max_s, self._rng = initial_s, max_s, rng
        self.failures = 0

    def next_delay(self) -> float:
        d = exponential_s(self.initial_s, self.max_s, self.failures)
        self.failures += 1
        return self._rng.uniform(d / 2, d)

    def reset(self) -> None:
        self.failures = 0
