"""Acting on "look now" nudges (MQTT ``notify/hotlists``, ``notify/ota``): each kind runs its
action once, after a random delay up to ``jitter_s``, however many nudges arrived meanwhile.

The delay spreads a fleet-wide nudge: a thousand units told at once that a hotlist changed
would otherwise all fetch it in the same second. The action is the existing signed fetch (the
hotlist poll, the OTA check); a nudge carries no content and grants no trust.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class NudgeScheduler:
    """``scheduler(kind)`` from any thread; ``actions[kind]()`` runs on a timer thread."""

    def __init__(self, actions: Mapping[str, Callable[[], None]], jitter_s: float,
                 rng: random.Random | None = None) -> None:
        self._actions = dict(actions)
        self._jitter_s = jitter_s
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._pending: dict[str, threading.Timer] = {}

    def __call__(self, kind: str) -> None:
        if kind not in self._actions:
            log.info("nudge ignored: nothing acts on %r", kind)
            return
        with self._lock:
            if kind in self._pending:
                return  # coalesced with the one already waiting
            t = threading.Timer(self._rng.uniform(0.0, self._jitter_s), self._fire, (kind,))
            t.daemon = True
            t.name = f"nudge-{kind}"
            self._pending[kind] = t
        t.start()

    def _fire(self, kind: str) -> None:
        with self._lock:
            self._pending.pop(kind, None)
        try:
            self._actions[kind]()
        except Exception:
            log.exception("nudge action failed", extra={"nudge": kind})

    def close(self) -> None:
        with self._lock:
            timers, self._pending = list(self._pending.values()), {}
        for t in timers:
            t.cancel()
