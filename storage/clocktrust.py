"""The wall time the store trusts: for retention (a destructive step) and for stamping days.

The daemon knows whether its clock is synchronised and whether it just jumped
(``firmware.link.timesync``); the store gets that judgement as a predicate (``clock_trusted``). With
no predicate the clock is trusted (the CLI, tests, benchmarks).

* Nothing is purged while the predicate says no (:meth:`TrustedTime.trusted`).
* The store remembers the latest wall time it saw while the clock was trusted (the high-water
  time, ``meta.trusted_hwm``). While the clock is untrusted and more than
  :data:`FUTURE_SLACK` ahead of that time, new reads are stamped with the day of
  high-water + slack instead of the day the clock claims (:meth:`TrustedTime.write_day`): a
  forward step cannot make reads look younger than they are, so they are never kept longer than
  ``retention_days`` + one day.
* A trusted clock more than :data:`FUTURE_SLACK` behind the high-water time (a synchronised
  step back) resets the high-water time: the old one was a wrong clock that was believed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from drivers.clock import Clock
from storage.db import Database
from storage.retention import day_of

log = logging.getLogger(__name__)

#: How far an untrusted clock may run ahead of the trusted high-water time before new reads
#: stop following it. A day: an unsynchronised RTC drifts seconds a day, not a day.
FUTURE_SLACK = timedelta(hours=24)
_META_KEY = "trusted_hwm"


class TrustedTime:
    def __init__(
        self, db: Database, clock: Clock, trusted: Callable[[], bool] | None = None
    ) -> None:
        self._db = db
        self._clock = clock
        self._predicate = trusted
        self._hwm: datetime | None = None
        self._saved: datetime | None = None
        with db.locked() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (_META_KEY,)).fetchone()
        if row is not None:
            try:
                self._hwm = self._saved = datetime.fromisoformat(row[0])
            except ValueError:
                log.warning("ignoring malformed trusted_hwm in meta", extra={"value": row[0]})

    def set_predicate(self, trusted: Callable[[], bool] | None) -> None:
        self._predicate = trusted

    @property
    def high_water(self) -> datetime | None:
        return self._hwm

    def trusted(self) -> bool:
        """Whether the wall clock may be believed now; notes the time if so. A predicate that
        raises counts as "no": a destructive step waits rather than guesses."""
        if self._predicate is not None:
            try:
                if not self._predicate():
                    return False
            except Exception:
                log.exception("clock_trusted predicate failed")
                return False
        self._note(self._clock.utcnow())
        return True

    def believed(self) -> bool:
        """The predicate's answer alone, noting nothing (for health reports)."""
        if self._predicate is None:
            return True
        try:
            return bool(self._predicate())
        except Exception:  # noqa: BLE001 - "no", as in trusted()
            return False

    def write_day(self) -> str:
        """The key day of a read written now (see the module docstring)."""
        now = self._clock.utcnow()
        if self.trusted() or self._hwm is None or now <= self._hwm + FUTURE_SLACK:
            return day_of(now)
        return day_of(self._hwm + FUTURE_SLACK)

    def save(self) -> None:
        """Persist the high-water time (at purge and close; losing the last hour is harmless)."""
        if self._hwm is None or self._hwm == self._saved:
            return
        hwm = self._hwm
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                (_META_KEY, hwm.isoformat()),
            )
        self._saved = hwm

    def _note(self, now: datetime) -> None:
        hwm = self._hwm
        if hwm is None or now > hwm:
            self._hwm = now
        elif now < hwm - FUTURE_SLACK:
            log.warning(
                "trusted clock is behind the trusted high-water time; resetting it",
                extra={"now": now.isoformat(), "high_water": hwm.isoformat()},
            )
            self._hwm = now
