"""Retention policy as pure functions over UTC days (no I/O, no clock reads)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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


def effective_days(days_in_key_order: Sequence[str], today: date) -> dict[str, str]:
    """The day each key day is aged by: itself, unless it is stamped in the future.

    ``days_in_key_order`` are the key days in the order their keys were created (insert
    order, which no clock can reorder). A day later than ``today`` + 1 was stamped by a clock
    that was ahead: it is aged as the last correctly stamped day created before it (its rows
    were written after that day's first write), else as the first one created after it, else
    not yet (kept until a correctly stamped day is written). Never later than the true write
    day, so a step back cannot lengthen retention.
    """
    limit = today + timedelta(days=1)
    real: list[tuple[int, str]] = []
    for i, d in enumerate(days_in_key_order):
        try:
            if date.fromisoformat(d) <= limit:
                real.append((i, d))
        except ValueError:
            pass
    out: dict[str, str] = {}
    for i, d in enumerate(days_in_key_order):
        try:
            future = date.fromisoformat(d) > limit
        except ValueError:
            out[d] = d  # expired_days treats a malformed day as expired
            continue
        if not future:
            out[d] = d
            continue
        before = [rd for j, rd in real if j < i]
        after = [rd for j, rd in real if j > i]
        if before:
            out[d] = before[-1]
        elif after:
            out[d] = after[0]
    return out


def window_start(today: date, window_days: int) -> str:
    """First day (inclusive) of a ``window_days``-day window ending today."""
    return (today - timedelta(days=window_days - 1)).isoformat()
