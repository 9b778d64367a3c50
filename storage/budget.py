"""The disk budget: how much the store uses, and dropping data, oldest first, when over it."""

from __future__ import annotations

import logging
import threading

from drivers.clock import Clock
from storage import counters as counters_mod
from storage.audit_log import SYSTEM_ACTOR, SYSTEM_ROLE, AuditLog
from storage.db import Database
from storage.health import HealthFlags
from storage.records import BudgetResult
from storage.retention import day_of
from storage.settings import StoreSettings

log = logging.getLogger(__name__)

#: Rows dropped per transaction (the writer waits for one chunk at most).
DROP_CHUNK_ROWS = 100

# Nothing belonging to a read with an unsent alert is ever dropped.
_PROTECT = (
    "NOT EXISTS (SELECT 1 FROM outbox o WHERE o.read_id = {t}.read_id"
    " AND o.kind = 'alert' AND o.sent_at IS NULL)"
)
_IMAGES = "SELECT seq, read_id FROM images i WHERE kind = '{kind}' AND " + _PROTECT.format(t="i")
# Drop steps in order: (counter name, query of (seq, read_id) rows to drop, oldest first).
_STEPS: tuple[tuple[str, str], ...] = (
    ("overview_dropped", _IMAGES.format(kind="overview") + " ORDER BY seq LIMIT ?"),
    ("crops_dropped", _IMAGES.format(kind="crop") + " ORDER BY seq LIMIT ?"),
    (
        "sent_reads_dropped",
        "SELECT r.seq, r.read_id FROM reads r JOIN outbox ob ON ob.item_id = r.read_id"
        " WHERE ob.sent_at IS NOT NULL AND " + _PROTECT.format(t="r") + " ORDER BY r.seq LIMIT ?",
    ),
)
_UNSENT_READS_STEP = (
    "unsent_reads_dropped",
    "SELECT r.seq, r.read_id FROM reads r WHERE "
    + _PROTECT.format(t="r")
    + " ORDER BY r.seq LIMIT ?",
)
_IMAGE_STEPS = ("overview_dropped", "crops_dropped")


class Budget:
    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        flags: HealthFlags,
        settings: StoreSettings,
        clock: Clock,
        maint_lock: threading.Lock,
    ) -> None:
        self._db = db
        self._audit = audit
        self._flags = flags
        self._settings = settings
        self._clock = clock
        self._maint_lock = maint_lock

    @property
    def budget_bytes(self) -> int:
        return int(self._settings.max_db_mb * 1024 * 1024)

    def used_bytes(self) -> int:
        """Bytes of live database pages plus the current WAL file."""
        with self._db.locked() as conn:
            ps = conn.execute("PRAGMA page_size").fetchone()[0]
            pc = conn.execute("PRAGMA page_count").fetchone()[0]
            fl = conn.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pc - fl) * ps + self._db.wal_bytes())

    def over(self) -> bool:
        return self.used_bytes() > self.budget_bytes

    def enforce(self, *, force_free_bytes: int = 0) -> BudgetResult:
        """Drop data until usage is under ``budget_low_water`` x ``max_db_mb``.

        Order: overview images, plate crops, oldest already-sent reads, then (if allowed by
        ``drop_unsent_reads_when_full``) oldest unsent plain reads. Nothing belonging to a read
        with an unsent alert is ever dropped. Every drop is counted and audited.
        """
        with self._maint_lock:
            budget = self.budget_bytes
            before = self.used_bytes()
            dropped = {name: 0 for name, _ in (*_STEPS, _UNSENT_READS_STEP)}
            if before > budget or force_free_bytes:
                self._drop_until_under(budget, force_free_bytes, dropped)
            after = self.used_bytes()
            result = BudgetResult(before, after, budget, over_budget=after > budget, **dropped)
            self._flags.over_budget = result.over_budget
            if result.dropped_anything:
                self._record(result, dropped)
            if result.over_budget:
                log.error(
                    "store still over budget: only data tied to unsent alerts/reads left",
                    extra={"bytes": after, "budget_bytes": budget},
                )
            return result

    def _drop_until_under(
        self, budget: int, force_free_bytes: int, dropped: dict[str, int]
    ) -> None:
        self._db.truncate_wal()
        target = int(budget * self._settings.budget_low_water)
        if force_free_bytes:
            # Measured after the WAL truncation, which frees nothing inside the file.
            target = min(target, self.used_bytes() - force_free_bytes)
        steps = list(_STEPS)
        if self._settings.drop_unsent_reads_when_full:
            steps.append(_UNSENT_READS_STEP)
        for name, select in steps:
            while self.used_bytes() > target:
                n = self._drop_chunk(name, select)
                if n == 0:
                    break
                dropped[name] += n

    def _drop_chunk(self, name: str, select: str) -> int:
        with self._db.transaction() as conn:
            rows = conn.execute(select, (DROP_CHUNK_ROWS,)).fetchall()
            seqs = [r[0] for r in rows]
            if rows and name in _IMAGE_STEPS:
                self._db.execute_in("DELETE FROM images WHERE seq IN ({marks})", seqs)
            elif rows:
                rids = [r[1] for r in rows]
                for table in ("images", "alerts", "outbox"):
                    self._db.execute_in(f"DELETE FROM {table} WHERE read_id IN ({{marks}})", rids)
                self._db.execute_in("DELETE FROM reads WHERE seq IN ({marks})", seqs)
        return len(rows)

    def _record(self, result: BudgetResult, dropped: dict[str, int]) -> None:
        """Count and audit a drop, then give the space back to the filesystem."""
        now = self._clock.utcnow()
        self._flags.last_budget_drop_at = now
        with self._db.transaction() as conn:
            counters_mod.bump(conn, day_of(now), **dropped)
            self._audit.append_in(
                conn,
                SYSTEM_ACTOR,
                SYSTEM_ROLE,
                "budget.drop",
                f"store above {self._settings.max_db_mb} MB budget",
                "over_budget" if result.over_budget else "ok",
                {**dropped, "bytes_before": result.bytes_before, "bytes_after": result.bytes_after},
            )
        self._db.reclaim()
        log.warning("store budget enforced", extra={**dropped, "bytes_after": result.bytes_after})
