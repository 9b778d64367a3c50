"""The OTA step journal: ``<ota root>/events.json``, the last :data:`KEEP` steps, numbered.

Every audited OTA step (checking excepted: it is not a change) is appended here as well as to the
audit chain, so the steps survive the restarts that a switch and a rollback are made of, and so
the steps taken outside the daemon (``vigil ota boot`` rolling back before a start, ``vigil ota
install-usb``) are not lost: the daemon that starts next carries them upstream (the uplink's
status report, ``POST /v1/status``) and shows them in ``vigil status``. ``seq`` grows by one
per step, so the receiving side keeps each step once however often a report repeats it (it keys
on ``seq``, ``at`` and ``step``: a journal lost with a damaged file starts again at 1).

Written with the slot state's atomic write (temp, fsync, rename).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from drivers import files

log = logging.getLogger(__name__)

#: Steps kept: one update is about ten (downloading ... committed), so a unit offline through
#: two updates still reports every step of both.
KEEP = 40
NAME = "events.json"


@dataclass(frozen=True)
class OtaEvent:
    seq: int
    at: str  # UTC, ISO 8601, seconds
    step: str  # downloading, verified, staged, trial, committed, rolled_back, refused, ...
    detail: str
    result: str  # ok | failed | refused
    # False: written outside the daemon (``vigil ota boot``, ``install-usb``), which has no
    # store; the daemon's worker copies it into the audit chain at its start.
    audited: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parse(doc: Any) -> list[OtaEvent]:
    if not isinstance(doc, list):
        raise ValueError("not a list")
    return [OtaEvent(int(d["seq"]), str(d["at"]), str(d["step"]), str(d["detail"]),
                     str(d.get("result", "ok")), bool(d.get("audited", True))) for d in doc]


class EventLog:
    """The journal in one OTA root. Not thread-safe on its own: the worker holds its lock."""

    def __init__(self, root: Path) -> None:
        self.path = root / NAME

    def load(self) -> list[OtaEvent]:
        try:
            return _parse(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return []
        except (ValueError, KeyError, TypeError) as e:
            log.warning("OTA step journal unreadable, starting a new one: %s", e,
                        extra={"path": str(self.path)})
            return []

    def append(self, at: datetime, step: str, detail: str, result: str = "ok", *,
               audited: bool = True) -> OtaEvent:
        kept = self.load()
        event = OtaEvent((kept[-1].seq + 1) if kept else 1, at.isoformat(timespec="seconds"),
                         step, detail[:500], result, audited)
        self._write([*kept, event][-KEEP:])
        return event

    def mark_audited(self) -> list[OtaEvent]:
        """Every step now in the audit chain; returns the journal as written."""
        kept = [replace(e, audited=True) for e in self.load()]
        self._write(kept)
        return kept

    def _write(self, kept: list[OtaEvent]) -> None:
        if self.path.parent.is_dir():
            files.write_atomic(self.path, json.dumps([e.as_dict() for e in kept],
                                                     indent=0).encode(), 0o644)
