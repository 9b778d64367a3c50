"""Structured logging: one JSON object per line, journald-friendly.

Fields passed with ``logger.info("msg", extra={...})`` land as top-level keys. Under journald the
timestamp is added by the journal, so ``VIGIL_LOG_TIME=0`` (set by the unit) drops ours.

Repeated identical warnings and errors are rate-limited (:class:`RepeatFilter`): a full disk
fails every frame's write, and a traceback per frame would flood the journal (and the SD card
the journal lives on) with copies of one fact.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TextIO

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, with_time: bool = True) -> None:
        super().__init__()
        self.with_time = with_time

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {}
        if self.with_time:
            out["ts"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + (
                f".{int(record.msecs):03d}Z"
            )
        out["level"] = record.levelname.lower()
        out["logger"] = record.name
        out["msg"] = record.getMessage()
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, separators=(",", ":"))


class RepeatFilter(logging.Filter):
    """Identical warnings and errors at most once per ``interval_s``, then a count.

    The first occurrence passes whole (with its traceback). Identical ones (same logger, level,
    message template and exception type) within ``interval_s`` are only counted; the first one
    after the interval passes as a summary, ``"<msg> (repeated N times in 60 s)"`` with field
    ``repeated`` = N and without the traceback again. :meth:`flush` writes the summary of a
    flood that has stopped (the daemon calls it every second). Below ``min_level`` everything
    passes. One instance may sit on several handlers: a record is decided once.
    """

    MAX_KEYS = 1024

    def __init__(self, interval_s: float = 60.0, min_level: int = logging.WARNING,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.min_level = min_level
        self._clock = clock
        self._lock = threading.Lock()
        # key -> [window start, suppressed count, logger name, level, message]
        self._seen: dict[tuple[Any, ...], list[Any]] = {}

    def _summary(self, msg: str, n: int) -> str:
        return f"{msg} (repeated {n} times in {self.interval_s:g} s)"

    def filter(self, record: logging.LogRecord) -> bool:
        decided = getattr(record, "_vigil_repeat", None)
        if decided is not None:
            return bool(decided)
        if record.levelno < self.min_level:
            return True
        exc = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else None
        key = (record.name, record.levelno, str(record.msg), exc)
        now = self._clock()
        with self._lock:
            entry = self._seen.get(key)
            passes = entry is None or now - entry[0] >= self.interval_s
            if passes:
                suppressed = entry[1] if entry is not None else 0
                self._seen[key] = [now, 0, record.name, record.levelno, record.getMessage()]
                if suppressed:
                    record.msg, record.args = self._summary(record.getMessage(), suppressed), ()
                    record.repeated = suppressed
                    record.exc_info, record.exc_text = None, None
                if len(self._seen) > self.MAX_KEYS:
                    self._prune(now)
            else:
                assert entry is not None
                entry[1] += 1
        record._vigil_repeat = passes
        return passes

    def _prune(self, now: float) -> None:
        for k in [k for k, e in self._seen.items() if now - e[0] >= self.interval_s and not e[1]]:
            del self._seen[k]

    def flush(self) -> int:
        """Log the count of each flood whose interval has ended; returns how many summaries."""
        now = self._clock()
        with self._lock:
            due = [(k, e) for k, e in self._seen.items()
                   if e[1] and now - e[0] >= self.interval_s]
            for k, _ in due:
                del self._seen[k]
        for _, (_, n, name, level, msg) in due:
            logging.getLogger(name).log(level, self._summary(msg, n),
                                        extra={"repeated": n, "_vigil_repeat": True})
        return len(due)


REPEATS = RepeatFilter()


def flush_repeats() -> None:
    """Write the counts of rate-limited floods that have ended (called by the daemon loop)."""
    REPEATS.flush()


class RecentLogs(logging.Handler):
    """The last ``capacity`` log lines in memory, for the technician console's ``logs N``."""

    def __init__(self, capacity: int = 500) -> None:
        super().__init__()
        self._lines: deque[str] = deque(maxlen=capacity)
        self.setFormatter(JsonFormatter(with_time=True))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)

    def last(self, n: int) -> list[str]:
        lines = list(self._lines)
        return lines[-n:] if n > 0 else []


RECENT = RecentLogs()


def configure(level: str = "info", stream: TextIO | None = None) -> None:
    """Route all logging to ``stream`` (stderr by default) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(with_time=os.environ.get("VIGIL_LOG_TIME", "1") != "0"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler.addFilter(REPEATS)
    RECENT.addFilter(REPEATS)  # the same instance: a record is decided once for both
    root.addHandler(handler)
    root.addHandler(RECENT)
    root.setLevel(level.upper())
