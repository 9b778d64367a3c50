"""The day keys: one cipher per UTC day, created on the day's first write, shredded by retention.

Wrapped keys live in ``day_keys``; unwrapped ciphers are cached here for the store's lifetime.
``secure_delete`` is on around every ``day_keys`` write: page rebalancing must not leave stale
copies of wrapped keys in free space, or shredding a key would not shred it.
"""

from __future__ import annotations

from collections.abc import Sequence

from drivers.clock import Clock
from storage.crypto import Cipher, CipherSuite
from storage.db import Database
from storage.errors import KeyDestroyed


class DayKeys:
    def __init__(self, db: Database, suite: CipherSuite, clock: Clock) -> None:
        self._db = db
        self._suite = suite
        self._clock = clock
        self._ciphers: dict[str, Cipher] = {}
        self.reload()

    def reload(self) -> None:
        """Forget the cached ciphers and load the keys the file holds (after a salvage)."""
        self._ciphers = {}
        with self._db.locked() as conn:
            rows = conn.execute("SELECT day, wrapped FROM day_keys").fetchall()
        for day, wrapped in rows:
            self._ciphers[day] = self._suite.day_cipher(day, wrapped)

    def for_write(self, day: str) -> Cipher:
        """The day's cipher, its key created (and committed) if this is the day's first write."""
        cipher = self._ciphers.get(day)
        if cipher is not None:
            return cipher
        with self._db.lock:
            cipher = self._ciphers.get(day)
            if cipher is not None:
                return cipher
            wrapped = self._suite.wrap_new_day_key(day)
            with self._db.transaction(secure_delete=True) as conn:
                # Another process on this file (the CLI) may have created the day's key first:
                # keep whichever was committed first and use that.
                conn.execute(
                    "INSERT INTO day_keys(day, wrapped, created_at) VALUES (?, ?, ?)"
                    " ON CONFLICT(day) DO NOTHING",
                    (day, wrapped, self._clock.utcnow().isoformat()),
                )
                stored = conn.execute(
                    "SELECT wrapped FROM day_keys WHERE day = ?", (day,)
                ).fetchone()[0]
            cipher = self._ciphers[day] = self._suite.day_cipher(day, bytes(stored))
            return cipher

    def for_read(self, day: str) -> Cipher:
        """The day's cipher; :class:`KeyDestroyed` once retention shredded its key."""
        cipher = self._ciphers.get(day)
        if cipher is not None:
            return cipher
        with self._db.locked() as conn:  # a key created by another process on this file (CLI)
            row = conn.execute("SELECT wrapped FROM day_keys WHERE day = ?", (day,)).fetchone()
            if row is None:
                raise KeyDestroyed(f"day key for {day} was destroyed by retention")
            cipher = self._ciphers[day] = self._suite.day_cipher(day, bytes(row[0]))
            return cipher

    def live(self) -> dict[str, Cipher]:
        """The cached ciphers by day (a copy)."""
        return dict(self._ciphers)

    def live_days(self) -> tuple[str, ...]:
        return tuple(sorted(self._ciphers))

    def shred(self, days: Sequence[str]) -> None:
        """Delete the days' keys in one committed transaction; from then on their data is noise,
        in the table, in free pages and in any copy of the file made afterwards."""
        with self._db.lock:
            with self._db.transaction(secure_delete=True):
                self._db.execute_in("DELETE FROM day_keys WHERE day IN ({marks})", days)
            for d in days:
                self._ciphers.pop(d, None)
