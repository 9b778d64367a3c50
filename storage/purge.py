"""Retention purge: crypto-shred every expired day, then delete its rows and reclaim the space.

Which days are expired is the pure policy in :mod:`storage.retention`.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import date, timedelta

from drivers.clock import Clock
from storage import counters as counters_mod
from storage.audit_log import SYSTEM_ACTOR, SYSTEM_ROLE, AuditLog
from storage.daykeys import DayKeys
from storage.db import Database
from storage.health import HealthFlags
from storage.records import PurgeResult
from storage.retention import expired_days
from storage.settings import StoreSettings

log = logging.getLogger(__name__)

#: Rows deleted per transaction: the writer waits for one chunk at most, not a whole purge.
DELETE_CHUNK_ROWS = 2000
_DATA_TABLES = ("reads", "images", "alerts", "outbox")


class Purge:
    def __init__(
        self,
        db: Database,
        day_keys: DayKeys,
        audit: AuditLog,
        flags: HealthFlags,
        settings: StoreSettings,
        clock: Clock,
        maint_lock: threading.Lock,
    ) -> None:
        self._db = db
        self._day_keys = day_keys
        self._audit = audit
        self._flags = flags
        self._settings = settings
        self._clock = clock
        self._maint_lock = maint_lock

    def run(self) -> PurgeResult:
        """Crypto-shred every day older than retention, then delete its rows and reclaim space.

        The day keys go first, in their own committed transaction with ``secure_delete`` on,
        so from that commit on the day's ciphertexts are noise even in free pages or a copy
        of the file. A crash after that leaves keyless rows, deleted by the next purge.
        """
        t0 = time.perf_counter()
        with self._maint_lock:
            today = self._clock.utcnow().date()
            doomed = self._doomed_days(today)
            self._flags.last_purge_at = self._clock.utcnow()
            if not doomed:
                return PurgeResult((), 0, 0, 0, 0, time.perf_counter() - t0)
            self._day_keys.shred(doomed)
            counts = {"images": 0, "alerts": 0, "unsent_outbox": 0, "reads": 0}
            for day in doomed:
                counts["unsent_outbox"] += int(
                    self._db.scalar(
                        "SELECT count(*) FROM outbox WHERE day = ? AND sent_at IS NULL", day
                    )
                )
                counts["images"] += self._delete_day("images", day)
                counts["alerts"] += self._delete_day("alerts", day)
                self._delete_day("outbox", day)
                counts["reads"] += self._delete_day("reads", day)
            self._record(today, doomed, counts)
            self._db.reclaim()
            result = PurgeResult(
                tuple(doomed),
                counts["reads"],
                counts["images"],
                counts["alerts"],
                counts["unsent_outbox"],
                time.perf_counter() - t0,
            )
            log.info(
                "retention purge",
                extra={"days": list(doomed), **counts, "duration_s": round(result.duration_s, 3)},
            )
            return result

    def _doomed_days(self, today: date) -> list[str]:
        """Expired days with a key or data, and days with data but no key (a crashed purge)."""
        with self._db.locked() as conn:
            key_days = [r[0] for r in conn.execute("SELECT day FROM day_keys")]
            data_days: set[str] = set()
            for table in _DATA_TABLES:
                data_days.update(r[0] for r in conn.execute(f"SELECT DISTINCT day FROM {table}"))
        keep = self._settings.retention_days
        orphan_days = {d for d in data_days if d not in set(key_days)}
        return sorted(
            set(expired_days(key_days, today, keep))
            | orphan_days
            | set(expired_days(data_days, today, keep))
        )

    def _delete_day(self, table: str, day: str) -> int:
        total = 0
        pk = "item_id" if table == "outbox" else "seq"
        while True:
            with self._db.transaction() as conn:
                n = conn.execute(
                    f"DELETE FROM {table} WHERE {pk} IN"
                    f" (SELECT {pk} FROM {table} WHERE day = ? LIMIT {DELETE_CHUNK_ROWS})",
                    (day,),
                ).rowcount
            total += n
            if n == 0:
                return total

    def _record(self, today: date, doomed: list[str], counts: dict[str, int]) -> None:
        """Count and audit the purge; drop counters older than ``counters_keep_days``."""
        with self._db.transaction() as conn:
            counters_mod.bump(conn, today.isoformat(), purges=1, purged_reads=counts["reads"])
            oldest = today - timedelta(days=self._settings.counters_keep_days)
            counters_mod.forget_before(conn, oldest.isoformat())
            self._audit.append_in(
                conn,
                SYSTEM_ACTOR,
                SYSTEM_ROLE,
                "retention.purge",
                f"older than {self._settings.retention_days} days",
                "ok",
                {"days": list(doomed), **counts},
            )
