"""Retention purge: crypto-shred every expired day, then delete its rows and reclaim the space.

Which days are expired is the pure policy in :mod:`storage.retention`.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import date, timedelta
from pathlib import Path

from drivers.clock import Clock
from storage import copies
from storage import counters as counters_mod
from storage.audit_log import SYSTEM_ACTOR, SYSTEM_ROLE, AuditLog
from storage.clocktrust import TrustedTime
from storage.daykeys import DayKeys
from storage.db import Database
from storage.health import HealthFlags
from storage.records import PurgeResult
from storage.retention import effective_days, expired_days
from storage.settings import StoreSettings

log = logging.getLogger(__name__)

#: Rows deleted per transaction: the writer waits for one chunk at most, not a whole purge.
DELETE_CHUNK_ROWS = 2000
_DATA_TABLES = ("reads", "images", "alerts", "outbox")
#: Still to deliver: neither acknowledged nor set aside as undecryptable.
_PENDING = "sent_at IS NULL AND failed_reason IS NULL"
#: Reads of a held day whose every outbox item is delivered (or set aside).
_DELIVERED_READS = (
    "SELECT r.read_id FROM reads r WHERE r.day = ? AND NOT EXISTS (SELECT 1 FROM outbox o"
    " WHERE o.read_id = r.read_id AND o.sent_at IS NULL AND o.failed_reason IS NULL)"
    f" LIMIT {DELETE_CHUNK_ROWS}"
)
BLOCKED_UNTRUSTED = "wall clock not trusted (unsynchronised or just jumped): purge waits"
SHRED_PENDING = ("keys deleted, but another connection holds a read snapshot: their last "
                 "copies stay in the database file and WAL until a checkpoint completes")


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
        trusted_time: TrustedTime,
    ) -> None:
        self._time = trusted_time
        self._db = db
        self._day_keys = day_keys
        self._audit = audit
        self._flags = flags
        self._settings = settings
        self._clock = clock
        self._maint_lock = maint_lock
        self._shredded: list[bytes] = []  # wrapped keys the last shred deleted, until proven gone

    def run(self) -> PurgeResult:
        """Crypto-shred every day older than retention, then delete its rows and reclaim space.

        Only on a trusted clock: otherwise nothing is destroyed and ``health().purge_blocked``
        says why. An expired day that still has undelivered items is held: its delivered reads
        are deleted, its key and its undelivered reads stay until they are delivered (or the
        disk budget drops them). The day keys go first, in their own committed transaction
        with ``secure_delete`` on, so from that commit on the day's ciphertexts are noise even
        in free pages or a copy of the file. A crash after that leaves keyless rows, deleted by
        the next purge.
        """
        t0 = time.perf_counter()
        with self._maint_lock:
            if not self._time.trusted():
                if self._flags.purge_blocked is None:
                    log.warning("retention purge skipped", extra={"why": BLOCKED_UNTRUSTED})
                self._flags.purge_blocked = BLOCKED_UNTRUSTED
                return PurgeResult((), 0, 0, 0, 0, time.perf_counter() - t0)
            self._flags.purge_blocked = None
            self._time.save()
            today = self._clock.utcnow().date()
            if self._flags.shred_pending is not None:
                self._finish_shred()
            keep = self._settings.retention_days
            copies_done = copies.purge_copies(
                Path(self._db.path), lambda d: bool(expired_days([d], today, keep)))
            doomed, held = self._doomed_days(today)
            self._flags.last_purge_at = self._clock.utcnow()
            counts = {"images": 0, "alerts": 0, "unsent_outbox": 0, "reads": 0}
            held_unsent = 0
            for day in held:
                counts["reads"] += self._delete_delivered(day)
                held_unsent += int(
                    self._db.scalar(
                        f"SELECT count(*) FROM outbox WHERE day = ? AND {_PENDING}", day
                    )
                )
            if not doomed and not counts["reads"]:
                if copies_done.keys_scrubbed or copies_done.deleted:
                    self._record(today, [], counts, held, held_unsent, copies_done, "ok")
                return PurgeResult(
                    (), 0, 0, 0, 0, time.perf_counter() - t0, tuple(held), held_unsent,
                    complete=self._flags.shred_pending is None,
                )
            if doomed:
                self._shredded = self._wrapped(doomed)  # to prove them gone afterwards
                self._day_keys.shred(doomed)
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
            self._db.reclaim(checkpoint=False)
            # Done only when the WAL was checkpointed into the file and reset: until then the
            # deleted keys' old pages are still in the file (and WAL) for a reader's snapshot.
            complete = self._keys_gone()
            self._flags.shred_pending = None if complete else SHRED_PENDING
            self._record(today, doomed, counts, held, held_unsent, copies_done,
                         "ok" if complete else "pending_checkpoint")
            if not complete:
                log.warning("retention purge: keys deleted, checkpoint pending",
                            extra={"days": list(doomed)})
            result = PurgeResult(
                tuple(doomed),
                counts["reads"],
                counts["images"],
                counts["alerts"],
                counts["unsent_outbox"],
                time.perf_counter() - t0,
                tuple(held),
                held_unsent,
                complete=complete,
            )
            log.info(
                "retention purge",
                extra={
                    "days": list(doomed),
                    "held_days": list(held),
                    "held_unsent": held_unsent,
                    **counts,
                    "duration_s": round(result.duration_s, 3),
                },
            )
            return result

    def _doomed_days(self, today: date) -> tuple[list[str], list[str]]:
        """(days to shred, expired days held for delivery).

        Shred: expired days (aged by :func:`effective_days`, so a future-stamped day is aged
        by when it was really written) with nothing left to deliver, and days with data but no
        key (a crashed purge; nothing there can be delivered). Held: expired days with a key
        and undelivered items.
        """
        with self._db.locked() as conn:
            key_days = [r[0] for r in conn.execute("SELECT day FROM day_keys ORDER BY rowid")]
            data_days: set[str] = set()
            for table in _DATA_TABLES:
                data_days.update(r[0] for r in conn.execute(f"SELECT DISTINCT day FROM {table}"))
            pending_days = {
                r[0] for r in conn.execute(f"SELECT DISTINCT day FROM outbox WHERE {_PENDING}")
            }
            damaged = {r[0] for r in conn.execute("SELECT day FROM damaged_day_keys")}
        keep = self._settings.retention_days
        aged = effective_days(key_days, today)
        expired_by_age = set(expired_days(set(aged.values()), today, keep))
        expired = {d for d in key_days if d in aged and aged[d] in expired_by_age}
        # A day whose key was damaged is set aside, not orphaned: kept until it expires.
        damaged_expired = set(expired_days(damaged, today, keep))
        orphan_days = data_days - set(key_days) - (damaged - damaged_expired)
        held = sorted(expired & pending_days)
        return sorted((expired - pending_days) | orphan_days | damaged_expired), held

    def _wrapped(self, days: list[str]) -> list[bytes]:
        with self._db.locked():
            return [bytes(r[0]) for r in self._db.rows_in(
                "SELECT wrapped FROM day_keys WHERE day IN ({marks})", days)]

    def _keys_gone(self) -> bool:
        """The WAL checkpointed into the file and reset, and then not one of the shredded
        wrapped keys left in the database file or its WAL (a byte search, the proof the
        purge reports on)."""
        if not self._db.checkpoint_truncate():
            return False
        left = copies.files_holding(Path(self._db.path), self._shredded)
        if left:
            log.error("shredded day keys still found in the store's files", extra={"files": left})
            return False
        self._shredded = []
        return True

    def _finish_shred(self) -> None:
        """Retry the checkpoint a previous purge could not complete; audit when it does."""
        if not self._keys_gone():
            return
        self._flags.shred_pending = None
        self._audit.append(SYSTEM_ACTOR, SYSTEM_ROLE, "retention.shred_complete",
                           "checkpoint completed after a reader let go", "ok")

    def _delete_delivered(self, day: str) -> int:
        """Delete the delivered reads of a held day (with their images, alerts, outbox rows)."""
        total = 0
        while True:
            with self._db.transaction() as conn:
                rids = [r[0] for r in conn.execute(_DELIVERED_READS, (day,))]
                for table in ("images", "alerts", "outbox", "reads"):
                    self._db.execute_in(f"DELETE FROM {table} WHERE read_id IN ({{marks}})", rids)
            total += len(rids)
            if not rids:
                return total

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

    def _record(
        self,
        today: date,
        doomed: list[str],
        counts: dict[str, int],
        held: list[str],
        held_unsent: int,
        copies_done: copies.CopiesResult,
        result: str,
    ) -> None:
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
                result,
                {"days": list(doomed), **counts, "held_days": held, "held_unsent": held_unsent,
                 "copy_keys_scrubbed": sum(copies_done.keys_scrubbed.values()),
                 "copies_deleted": len(copies_done.deleted)},
            )
