"""Transparency counters: per-day aggregate counts, bumped in the transaction of the event.

They hold no personal data, so they outlive retention purges (kept ``counters_keep_days``).
"""

from __future__ import annotations

import sqlite3
from datetime import date
from typing import Any

from storage.db import Database
from storage.retention import window_start

NAMES = (
    "reads",
    "vehicles",
    "hotlist_hits",
    "searches",
    "searches_denied",
    "purges",
    "purged_reads",
    "overview_dropped",
    "crops_dropped",
    "sent_reads_dropped",
    "unsent_reads_dropped",
    "uplinked",
    "uplink_bytes",  # the uplink's daily byte budget spent (firmware.uplink.pacing.ByteBudget)
)


def bump(conn: sqlite3.Connection, day: str, **counts: int) -> None:
    """Add ``counts`` to the day's counters, inside the caller's open transaction."""
    rows = [(day, name, n) for name, n in counts.items() if n]
    if rows:
        conn.executemany(
            "INSERT INTO counters(day, name, value) VALUES (?, ?, ?)"
            " ON CONFLICT(day, name) DO UPDATE SET value = value + excluded.value",
            rows,
        )


def value(db: Database, day: str, name: str) -> int:
    with db.locked() as conn:
        row = conn.execute(
            "SELECT value FROM counters WHERE day = ? AND name = ?", (day, name)
        ).fetchone()
    return 0 if row is None else int(row[0])


def forget_before(conn: sqlite3.Connection, day: str) -> None:
    """Delete counters of days before ``day``, inside the caller's open transaction."""
    conn.execute("DELETE FROM counters WHERE day < ?", (day,))


def stats(db: Database, today: date, window_days: int) -> dict[str, Any]:
    """Counters summed over the last ``window_days`` UTC days up to ``today``, plus the window
    and ``stored_reads``."""
    if not 1 <= window_days <= 3660:
        raise ValueError("window_days must be 1..3660")
    since = window_start(today, window_days)
    with db.locked() as conn:
        rows = conn.execute(
            "SELECT name, sum(value) FROM counters WHERE day >= ? GROUP BY name", (since,)
        ).fetchall()
        stored = conn.execute("SELECT count(*) FROM reads").fetchone()[0]
    out: dict[str, Any] = dict.fromkeys(NAMES, 0)
    out.update({n: int(v) for n, v in rows})
    out.update(
        window_days=window_days,
        since=since,
        until=today.isoformat(),
        stored_reads=int(stored),
    )
    return out
