"""Structured logging: one JSON object per line, journald-friendly.

Fields passed with ``logger.info("msg", extra={...})`` land as top-level keys. Under journald the
timestamp is added by the journal, so ``VIGIL_LOG_TIME=0`` (set by the unit) drops ours.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections import deque
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
    root.addHandler(handler)
    root.addHandler(RECENT)
    root.setLevel(level.upper())
