"""The day keys: one cipher per UTC day, created on the day's first write, shredded by retention.

Wrapped keys live in ``day_keys``; unwrapped ciphers are cached here for the store's lifetime.
``secure_delete`` is on around every ``day_keys`` write: page rebalancing must not leave stale
copies of wrapped keys in free space, or shredding a key would not shred it.

A wrapped key that no longer authenticates (a bit flip on the card, an edit) is moved to
``damaged_day_keys`` instead of stopping the store from opening: that day's rows are set aside
(unreadable, not delivered, kept until the day expires), the event is audited and counted, and
the rest of the store keeps working.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from drivers.clock import Clock
from storage.audit_log import SYSTEM_ACTOR, SYSTEM_ROLE, AuditLog
from storage.crypto import Cipher, CipherSuite
from storage.db import Database
from storage.errors import DayKeyDamaged, KeyDestroyed, TamperDetected
from storage.health import HealthFlags

log = logging.getLogger(__name__)


class DayKeys:
    def __init__(
        self, db: Database, suite: CipherSuite, clock: Clock, audit: AuditLog, flags: HealthFlags
    ) -> None:
        self._db = db
        self._suite = suite
        self._clock = clock
        self._audit = audit
        self._flags = flags
        self._ciphers: dict[str, Cipher] = {}
        self.reload()

    def reload(self) -> None:
        """Forget the cached ciphers and load the keys the file holds (after a salvage).

        A key that fails authentication is set aside (:meth:`_set_aside`), not fatal."""
        self._ciphers = {}
        with self._db.locked() as conn:
            rows = conn.execute("SELECT day, wrapped FROM day_keys").fetchall()
        damaged: list[tuple[str, bytes]] = []
        for day, wrapped in rows:
            try:
                self._ciphers[day] = self._suite.day_cipher(day, wrapped)
            except TamperDetected:
                damaged.append((day, bytes(wrapped)))
        if damaged:
            self._set_aside(damaged)
        self._flags.damaged_day_keys = self.damaged_days()

    def _set_aside(self, damaged: list[tuple[str, bytes]]) -> None:
        """Move damaged wrapped keys out of ``day_keys`` (a new key can then be made for
        today), count the reads they locked, and audit it, in one transaction."""
        days = [d for d, _ in damaged]
        now = self._clock.utcnow().isoformat()
        with self._db.transaction(secure_delete=True) as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO damaged_day_keys(day, wrapped, found_at) VALUES (?, ?, ?)",
                [(d, w, now) for d, w in damaged],
            )
            self._db.execute_in("DELETE FROM day_keys WHERE day IN ({marks})", days)
            reads = sum(
                int(n) for (n,) in self._db.rows_in(
                    "SELECT count(*) FROM reads WHERE day IN ({marks})", days)
            )
            self._audit.append_in(
                conn, SYSTEM_ACTOR, SYSTEM_ROLE, "store.day_key_damaged",
                "wrapped day key failed authentication", "set_aside",
                {"days": days, "reads": reads},
            )
        self._flags.set_aside_reads += reads
        log.error("damaged day keys set aside; their reads cannot be opened",
                  extra={"days": days, "reads": reads})

    def damaged_days(self) -> tuple[str, ...]:
        with self._db.locked() as conn:
            rows = conn.execute("SELECT day FROM damaged_day_keys ORDER BY day").fetchall()
        return tuple(r[0] for r in rows)

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
                if day in self._flags.damaged_day_keys:
                    raise DayKeyDamaged(f"day key for {day} is damaged; its rows are set aside")
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
                self._db.execute_in("DELETE FROM damaged_day_keys WHERE day IN ({marks})", days)
            for d in days:
                self._ciphers.pop(d, None)
            self._flags.damaged_day_keys = self.damaged_days()
