"""The durable home of reads, images, alerts, the outbox, the audit chain and the counters.

:class:`Store` is a facade: it opens the file and wires one part per concern, each in its own
module, then delegates to them.

=================  =========================================================================
``db``             the connection, its lock, ``transaction()``, chunked IN lists, opening
``daykeys``        per-day keys: created on first write, cached, shredded by retention
``sealed``         sealing rows for writing; fetching and opening them for reading
``writer``         the writer thread and group commit (``put_read`` / ``submit_read``)
``outbox``         what the uplink must deliver, and its acknowledgements
``access``         plate search and reads by id, checked and audited
``audit_log``      the audit chain in the database (``storage.audit`` is the pure chain)
``counters``       transparency counters
``purge``          retention purge (``storage.retention`` is the pure policy)
``budget``         disk usage and dropping data when over budget
``maintenance``    purge and budget on a schedule
``health``         the flags the parts raise and the ``StoreHealth`` record
=================  =========================================================================

Concurrency: one SQLite connection guarded by one lock. A single writer thread takes queued
reads, seals them outside the lock, then commits a whole group in one transaction (group
commit: one fsync for many reads). ``put_read`` returns only after that commit. Other
threads (uplink, console, maintenance) take the lock for their own short transactions; purge and
budget enforcement work in chunks so a read never waits behind a whole purge.

Durability: WAL with ``synchronous=FULL``. In WAL mode FULL fsyncs the log at every commit, so an
acknowledged read survives a power cut, not only a process crash (NORMAL would lose the last
commits on power loss while having already acknowledged them). See docs/storage.md.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from drivers.clock import Clock
from drivers.resource import Closing
from storage import counters
from storage.access import Access
from storage.audit import checkpoint_json
from storage.audit_log import SYSTEM_ACTOR, SYSTEM_ROLE, AuditLog
from storage.budget import Budget
from storage.clocktrust import TrustedTime
from storage.crypto import AesGcmSuite, CipherSuite, KeyHierarchy
from storage.daykeys import DayKeys
from storage.db import (
    Database,
    configure,
    connect,
    integrity_check,
    move_aside,
    transaction,
)
from storage.errors import CorruptStore, KeySourceError, StoreError
from storage.floors import VersionFloors
from storage.health import CorruptionRecovery, HealthFlags, SalvageReport, StoreHealth
from storage.keys import KeySource
from storage.maintenance import Maintenance
from storage.outbox import DeadLetter, Outbox
from storage.purge import Purge
from storage.records import (
    AlertRecord,
    AuditCheckpoint,
    AuditEntry,
    BudgetResult,
    OutboxItem,
    PurgeResult,
    ReadRecord,
    VerifyReport,
)
from storage.roles import Caller
from storage.rowmac import RowMac
from storage.salvage import salvage
from storage.schema import SCHEMA_VERSION, check_not_newer, migrate
from storage.sealed import SealedRows
from storage.settings import StoreSettings
from storage.writer import Writer

log = logging.getLogger(__name__)


class Store(Closing):
    """Open with :meth:`open`; use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        db: Database,
        keys: KeyHierarchy,
        suite: CipherSuite,
        settings: StoreSettings,
        clock: Clock,
        *,
        recovered: CorruptionRecovery | None,
        background: bool,
        clock_trusted: Callable[[], bool] | None = None,
        key_source: str = "",
    ) -> None:
        self._key_source = key_source
        self._db = db
        self._keys = keys
        self._suite = suite
        self._clock = clock
        self._settings = settings
        self._flags = HealthFlags(recovered_from_corruption=recovered)
        maint_lock = threading.Lock()  # one purge or budget enforcement at a time
        self._audit = AuditLog(db, keys, settings.checkpoint_every, clock)
        self._time = TrustedTime(db, clock, clock_trusted)
        self._day_keys = DayKeys(db, suite, clock, self._audit, self._flags)
        sealed = SealedRows(db, self._day_keys)
        row_mac = RowMac(keys.row_mac_key)
        self._outbox = Outbox(db, sealed, self._audit, self._flags, clock, row_mac)
        self._access = Access(
            db, self._day_keys, sealed, keys, self._audit, settings.search_roles, clock
        )
        self._budget = Budget(db, self._audit, self._flags, settings, clock, maint_lock)
        self._purge = Purge(
            db, self._day_keys, self._audit, self._flags, settings, clock, maint_lock, self._time
        )
        self._writer = Writer(
            db,
            self._day_keys,
            self._budget,
            self._flags,
            settings.group_commit_max,
            clock,
            self._time,
            row_mac,
        )
        self._maintenance = Maintenance(
            self._purge,
            self._budget,
            self._flags,
            settings.purge_interval_s,
            clock,
            background=background,
            check=self.check_integrity,
        )

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        path: Path,
        key_source: KeySource,
        settings: StoreSettings,
        clock: Clock,
        *,
        background: bool = True,
        cipher_suite: CipherSuite | None = None,
        clock_trusted: Callable[[], bool] | None = None,
    ) -> Store:
        """Open (creating if absent) the store at ``path``.

        Checks integrity; a corrupt file is moved aside as ``<name>.corrupt-<UTC stamp>`` (with
        its -wal/-shm), a fresh store is created, and the event is audited and flagged in
        :meth:`health`. A store written by newer firmware raises :class:`SchemaTooNew` and is
        left untouched. A KEK that does not match the store raises :class:`KeySourceError`.
        Runs a retention purge and a budget check before returning. ``background`` starts the
        maintenance thread that purges every ``purge_interval_s``. ``cipher_suite`` replaces
        AES-256-GCM under the KEK (a benchmark's plaintext baseline); the store records the
        suite's mode when it is created and refuses to open under another.
        ``clock_trusted`` says whether the wall clock may be believed (synchronised, no recent
        jump); no retention purge runs while it says no (see :mod:`storage.clocktrust`). Absent,
        the clock is trusted. :meth:`set_clock_trusted` replaces it later.
        """
        path = Path(path)
        if Path(settings.path) != path:
            settings = replace(settings, path=path)
        try:
            kek = key_source.load_kek()
        except OSError as e:
            raise KeySourceError(f"cannot load KEK from {key_source.describe()}: {e}") from e
        keys = KeyHierarchy(kek)
        del kek
        suite = cipher_suite if cipher_suite is not None else AesGcmSuite(keys)
        path.parent.mkdir(parents=True, exist_ok=True)
        recovered = _move_aside_if_corrupt(path, settings, clock)
        conn = connect(path)
        try:
            configure(conn, settings)
            before, _ = migrate(conn, str(path))
            _check_meta(conn, keys, suite.mode, fresh=before == 0)
            report = None if recovered is None else salvage(
                Path(recovered.moved_to), conn, suite, RowMac(keys.row_mac_key))
            _stamp_rows_once(conn, keys, salvaged=report is not None)
        except BaseException:
            conn.close()
            raise
        store = cls(
            Database(conn, str(path)),
            keys,
            suite,
            settings,
            clock,
            recovered=recovered,
            background=background,
            clock_trusted=clock_trusted,
            key_source=key_source.describe(),
        )
        if recovered is not None and report is not None:
            store._record_recovery(recovered, report, "integrity check failed at start")
        store.audit(
            SYSTEM_ACTOR,
            SYSTEM_ROLE,
            "store.open",
            "start",
            "ok",
            {"schema_version": SCHEMA_VERSION, "migrated_from": before,
             "key_source": key_source.describe().partition(":")[0]},
        )
        store.verify_rows()
        store.purge_expired()
        store.enforce_budget()
        store._maintenance.start()
        return store

    def _record_recovery(
        self, recovered: CorruptionRecovery, report: SalvageReport, why: str
    ) -> None:
        self._flags.recovered_from_corruption = recovered
        self._flags.salvage = report
        detail = {"moved_to": recovered.moved_to, "reason": recovered.reason, **report.as_dict()}
        log.error("store was corrupt; moved aside, intact rows salvaged", extra=detail)
        self.audit(
            SYSTEM_ACTOR,
            SYSTEM_ROLE,
            "store.corrupt_recovered",
            why,
            "recovered" if not report.lost_reads else "recovered_with_loss",
            detail,
        )

    def check_integrity(self) -> bool:
        """``PRAGMA quick_check`` of the file on a fresh connection (the store's own one would
        answer from its page cache); run every ``purge_interval_s`` by maintenance. On damage
        the file is moved aside and salvaged into a new one while reads wait (the same
        recovery as at open). Returns False if damage was found."""
        if self._settings.integrity_check == "off" or self._db.closed:
            return True
        path = Path(self._db.path)
        try:
            probe = connect(path)
            try:
                integrity_check(probe, self._settings.integrity_check, str(path))
            finally:
                probe.close()
        except (CorruptStore, sqlite3.DatabaseError) as e:
            self._recover_live(f"{type(e).__name__}: {e}")
            return False
        self.verify_rows()
        return True

    def verify_rows(self) -> int:
        """Check the MAC of every outbox and alert row (at open and with every integrity
        check); rows that fail are refused, audited and counted in :meth:`health`."""
        return self._outbox.verify_rows()

    def _recover_live(self, reason: str) -> None:
        path = Path(self._db.path)
        with self._db.lock:  # the writer commits under this lock: queued reads wait
            self._db.check_open()
            try:
                self._db.conn.close()
            except sqlite3.Error:
                log.exception("closing the damaged store failed")
            recovered = move_aside(path, self._clock, reason)
            conn = connect(path)
            configure(conn, self._settings)
            migrate(conn, str(path))
            _check_meta(conn, self._keys, self._suite.mode, fresh=True)
            report = salvage(Path(recovered.moved_to), conn, self._suite,
                             RowMac(self._keys.row_mac_key))
            _stamp_rows_once(conn, self._keys, salvaged=True)
            self._db.conn = conn
            self._day_keys.reload()
        self._record_recovery(recovered, report, "integrity check failed while running")

    # ------------------------------------------------------------------ keys

    def version_floors(self) -> VersionFloors:
        """The anti-rollback floors of signed lists (hotlists), MACed in the store."""
        return VersionFloors(self._db, self._keys.derive("version-floors"))

    def derive_key(self, purpose: str) -> bytes:
        """A 32-byte subkey of the KEK for another component (e.g. ``"hotlist"``), by HKDF.

        Stable across restarts for the same KEK and purpose; distinct per purpose."""
        return self._keys.derive(purpose)

    def set_clock_trusted(self, predicate: Callable[[], bool] | None) -> None:
        """Install the daemon's judgement of its wall clock (None: always trusted). Retention
        purges only while it returns True; see :mod:`storage.clocktrust`."""
        self._time.set_predicate(predicate)

    def audit_public_key(self) -> bytes:
        """Raw Ed25519 public key that verifies this device's audit checkpoints."""
        return self._audit.public_key()

    # ------------------------------------------------------------------ writing reads

    def submit_read(self, read: ReadRecord, alerts: Sequence[AlertRecord] = ()) -> Future[None]:
        """Queue a read; the future completes once its transaction has committed (or failed).

        For callers that keep several reads in flight (group commit). ``put_read`` is the
        blocking form.
        """
        return self._writer.submit(read, alerts)

    def put_read(self, read: ReadRecord, alerts: Sequence[AlertRecord] = ()) -> None:
        """Store a read (and its hotlist alerts) durably; returns only after commit.

        Idempotent: a read whose ``read_id`` is already stored is acknowledged without a second
        copy. Raises :class:`StoreFull` if the disk is full even after dropping what may be
        dropped. Thread-safe.
        """
        self._writer.submit(read, alerts).result()

    # ------------------------------------------------------------------ outbox

    def next_outbox_batch(
        self, max_items: int, max_bytes: int, include_images: bool = False
    ) -> list[OutboxItem]:
        """Pending items, alerts first (highest priority first), then reads oldest first.

        Stops before ``max_bytes`` of JSON payload (always at least one item, so one large item
        cannot block the queue). Items that no longer decrypt are set aside as failed,
        counted in :meth:`health`, and audited, rather than retried forever.
        """
        return self._outbox.next_batch(max_items, max_bytes, include_images)

    def mark_sent(self, item_ids: Iterable[str]) -> int:
        """Mark items acknowledged by the server. Idempotent: returns how many were newly
        marked (a repeated acknowledgement counts 0). Audited as data leaving the device."""
        return self._outbox.mark_sent(item_ids)

    def dead_letter(self, reasons: Mapping[str, str]) -> int:
        """Set aside items the agency rejected for good (``{item_id: reason}``): not sent again,
        kept until retention, audited, counted in :meth:`health`. Returns how many were new."""
        return self._outbox.dead_letter(reasons)

    def dead_letters(self, limit: int = 1000) -> list[DeadLetter]:
        """The dead-lettered items, oldest first."""
        return self._outbox.dead_letters(limit)

    def record_attempt(self, item_ids: Iterable[str]) -> None:
        """Count one delivery attempt for each item (for back-off and diagnostics)."""
        self._outbox.record_attempt(item_ids)

    def outbox_depth(self) -> dict[str, int]:
        """Items still to deliver: ``{"alerts": n, "reads": n}``."""
        return self._outbox.depth()

    # ------------------------------------------------------------------ access to read data

    def search_plate(self, text: str, caller: Caller) -> list[ReadRecord]:
        """Reads of a plate still within retention, newest first, with their images.

        Refused (:class:`AccessDenied`) unless ``caller.role`` is in ``search_roles`` and its
        reason holds a case number; granted and refused searches are both audited with the
        caller as the actor, and counted (:mod:`storage.access`).
        """
        return self._access.search_plate(text, caller)

    def get_reads(self, read_ids: Sequence[str], caller: Caller) -> list[ReadRecord]:
        """Decrypt reads by id (with images); checked and audited like a search. Missing or
        purged ids are skipped; a read that fails authentication raises :class:`TamperDetected`."""
        return self._access.get_reads(read_ids, caller)

    # ------------------------------------------------------------------ audit

    def audit(
        self,
        actor: str,
        role: str,
        action: str,
        reason: str,
        result: str,
        detail: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Append one entry to the hash chain, committed before returning."""
        return self._audit.append(actor, role, action, reason, result, detail)

    def checkpoint_audit(self) -> AuditCheckpoint | None:
        """Sign the current head of the chain (done every ``checkpoint_every`` entries and at
        close). Returns the checkpoint, or None when the log is empty."""
        return self._audit.checkpoint()

    def published_checkpoint(self, device_id: str = "") -> dict[str, Any] | None:
        """The current head of the audit chain, signed now, in its published JSON form
        (``storage.audit.checkpoint_json``): the uplink sends one with every batch and
        heartbeat so the agency holds heads the unit can no longer take back."""
        cp = self._audit.sign_head()
        return None if cp is None else checkpoint_json(cp, device_id)

    def checkpoint_published(self, number: int) -> None:
        """The agency acknowledged the request carrying published checkpoint ``number``: the
        next one is numbered after it (a lost answer repeats a number, never skips one)."""
        self._audit.published(number)

    def last_audit_detail(self, actions: tuple[str, ...], key: str) -> Any:
        """``detail[key]`` of the newest audit entry with one of ``actions`` (None if none)."""
        return self._audit.last_detail(actions, key)

    def audit_entries(self, since_seq: int = 1) -> Iterator[AuditEntry]:
        return self._audit.entries(since_seq)

    def audit_checkpoints(self) -> list[AuditCheckpoint]:
        return self._audit.checkpoints()

    def verify_audit(self) -> VerifyReport:
        return self._audit.verify()

    def export_audit(self, out: IO[str]) -> int:
        """Write the anonymised chain as JSON lines (one header line, then entries). Audited."""
        return self._audit.export(out)

    # ------------------------------------------------------------------ counters

    def stats(self, window_days: int = 30) -> dict[str, Any]:
        """Transparency counters summed over the last ``window_days`` UTC days (today included).

        ``vehicles`` is the sum of distinct plates per day (a vehicle seen on two days counts
        twice): cross-day distinct counts would need cross-day linkable data, which retention
        forbids keeping.
        """
        out = counters.stats(self._db, self._clock.utcnow().date(), window_days)
        out["outbox"] = self.outbox_depth()
        return out

    def uplink_bytes_spent(self, day: str) -> int:
        """Bytes the uplink spent on UTC ``day`` (its daily budget survives a restart)."""
        return counters.value(self._db, day, "uplink_bytes")

    def add_uplink_bytes(self, day: str, n: int) -> None:
        """Add ``n`` bytes to the uplink's spend on ``day`` (one small transaction)."""
        with self._db.transaction() as conn:
            counters.bump(conn, day, uplink_bytes=n)

    # ------------------------------------------------------------------ retention and budget

    def purge_expired(self) -> PurgeResult:
        """Crypto-shred every day older than retention, then delete its rows and reclaim space."""
        return self._purge.run()

    def used_bytes(self) -> int:
        """Bytes of live database pages plus the current WAL file."""
        return self._budget.used_bytes()

    def enforce_budget(self, *, force_free_bytes: int = 0) -> BudgetResult:
        """Drop data until usage is under ``budget_low_water`` x ``max_db_mb`` (see
        :mod:`storage.budget` for the order). Every drop is counted and audited."""
        return self._budget.enforce(force_free_bytes=force_free_bytes)

    def maintenance(self) -> None:
        """Run purge and budget enforcement if ``purge_interval_s`` has elapsed (monotonic)."""
        self._maintenance.run_if_due()

    # ------------------------------------------------------------------ health and lifecycle

    def health(self) -> StoreHealth:
        """The store's health (see :class:`StoreHealth`): ``degraded`` while over budget, after
        a corruption recovery or while writes fail; ``ok`` False then and after an error."""
        live: dict[str, Any] = {}
        if not self._db.closed:
            try:
                live = {
                    "used_bytes": self.used_bytes(),
                    "budget_bytes": self._budget.budget_bytes,
                    "outbox": self.outbox_depth(),
                    "dead_letter_items": self._outbox.dead_letter_count(),
                    "live_days": self._day_keys.live_days(),
                }
            except sqlite3.DatabaseError:
                # Damage not yet found by the integrity check: health still answers, without
                # the live figures (the next check moves the file aside and salvages it).
                live = {}
        return self._flags.snapshot(
            schema_version=SCHEMA_VERSION,
            plaintext=self._suite.mode != AesGcmSuite.mode,
            clock_trusted=self._time.believed(),
            key_source=self._key_source,
            **live,
        )

    def close(self) -> None:
        """Drain queued reads, sign the audit head, checkpoint the WAL, close. Idempotent."""
        if self._db.closed:
            return
        self._writer.drain_and_stop()
        self._maintenance.stop()
        try:
            self._time.save()
            self.audit(SYSTEM_ACTOR, SYSTEM_ROLE, "store.close", "shutdown", "ok")
            self.checkpoint_audit()
            self._db.truncate_wal()
        finally:
            self._db.close()


# ---------------------------------------------------------------------- opening helpers


def _move_aside_if_corrupt(
    path: Path, settings: StoreSettings, clock: Clock
) -> CorruptionRecovery | None:
    """Probe an existing file; if it fails the integrity check (or is no database), move it
    aside. A file from newer firmware raises :class:`SchemaTooNew` and is left untouched."""
    if not path.exists():
        return None
    try:
        probe = connect(path)
        try:
            check_not_newer(probe, str(path))
            integrity_check(probe, settings.integrity_check, str(path))
        finally:
            probe.close()
    except CorruptStore as e:
        return move_aside(path, clock, str(e))
    except sqlite3.DatabaseError as e:
        return move_aside(path, clock, f"{type(e).__name__}: {e}")
    return None


def _stamp_rows_once(conn: sqlite3.Connection, keys: KeyHierarchy, *, salvaged: bool) -> None:
    """MAC the outbox and alert rows that have none: once after the schema gained the column
    (``meta.rowmac`` records it), and after a salvage filled a fresh file. Never otherwise: a
    NULL MAC later is a row someone wrote without the key."""
    done = conn.execute("SELECT 1 FROM meta WHERE key = 'rowmac'").fetchone() is not None
    if done and not salvaged:
        return
    with transaction(conn):
        RowMac(keys.row_mac_key).stamp_unstamped(conn)
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('rowmac', '1')")


def _check_meta(conn: sqlite3.Connection, keys: KeyHierarchy, mode: str, *, fresh: bool) -> None:
    """Record the KEK's check value and the cipher mode in a new store; in an existing one,
    refuse a KEK or a mode that does not match."""
    rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    check = keys.key_check.hex()
    if fresh or not rows:
        with transaction(conn):
            conn.executemany(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                [("key_check", check), ("mode", mode)],
            )
        return
    if rows.get("mode") != mode:
        raise StoreError(f"store mode is {rows.get('mode')!r}, expected {mode!r}")
    if rows.get("key_check") != check:
        raise KeySourceError(
            "the KEK from the key source does not match this store (was the key file replaced "
            "or the store copied from another unit?); refusing to open rather than lose data"
        )
