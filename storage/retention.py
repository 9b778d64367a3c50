"""Retention policy as pure functions over UTC days (no I/O, no clock reads)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta


def day_of(ts: datetime) -> str:
    """The key/retention day of an instant: its UTC calendar date, ISO formatted."""
    return ts.astimezone(UTC).date().isoformat()


def expired_days(days: Iterable[str], today: date, retention_days: int) -> list[str]:
    """Days whose data must be gone by ``today``.

    Day D is expired once ``D + retention_days <= today``: a read stored at 00:00 of D lives
    exactly ``retention_days``, one stored later lives less, none ever lives longer.
    """
    cutoff = today - timedelta(days=retention_days)
    out = []
    for d in set(days):
        try:
            if date.fromisoformat(d) <= cutoff:
                out.append(d)
        except ValueError:
            out.append(d)  # a malformed day cannot be proven young: treat it as expired
    return sorted(out)


def window_start(today: date, window_days: int) -> str:
    """First day (inclusive) of a ``window_days``-day window ending today."""
    return (today - timedelta(days=window_days - 1)).isoformat()
