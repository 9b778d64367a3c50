"""The durable home of reads, images, alerts, the outbox, the audit chain and the counters.

Concurrency: one SQLite connection guarded by ``_lock``. A single writer thread takes queued
reads, seals them outside the lock, then commits a whole group in one transaction (group
commit: one fsync for many reads). ``put_read`` returns only after that commit. Other
threads (uplink, console, maintenance) take the lock for their own short transactions; purge and
budget enforcement work in chunks so a read never waits behind a whole purge.

Durability: WAL with ``synchronous=FULL``. In WAL mode FULL fsyncs the log at every commit, so an
acknowledged read survives a power cut, not only a process crash (NORMAL would lose the last
commits on power loss while having already acknowledged them). See docs/storage.md.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from drivers.clock import Clock
from drivers.resource import Closing
from storage import audit as audit_mod
from storage import codec
from storage.crypto import (
    DayCipher,
    KeyHierarchy,
    PlainDayCipher,
    associated_data,
    new_day_key,
    normalise_plate,
)
from storage.errors import (
    AccessDenied,
    CorruptStore,
    KeyDestroyed,
    KeySourceError,
    StoreClosed,
    StoreError,
    StoreFull,
    TamperDetected,
)
from storage.health import CorruptionRecovery, HealthFlags, StoreHealth
from storage.keys import KeySource
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
from storage.retention import day_of, expired_days, window_start
from storage.schema import SCHEMA_VERSION, check_not_newer, migrate
from storage.settings import StoreSettings

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "vigil"
SYSTEM_ROLE = "system"
_CHUNK = 500
_SQLITE_FULL = 13
_BUDGET_CHECK_EVERY = 8  # batches between cheap page-count checks in the writer
_AD_READ = ("reads", "payload")
_AD_ALERT = ("alerts", "payload")

Cipher = DayCipher | PlainDayCipher


@dataclass(slots=True)
class _Pending:
    read: ReadRecord
    alerts: tuple[AlertRecord, ...]
    future: Future[None]


@dataclass(slots=True)
class _Sealed:
    pending: _Pending
    read_row: tuple[str, str, bytes, bytes]
    image_rows: list[tuple[str, str, str, bytes]]
    alert_rows: list[tuple[str, str, str, int, bytes]]
    outbox_rows: list[tuple[str, str, str, str, int, int]]


class Store(Closing):
    """Open with :meth:`open`; use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        keys: KeyHierarchy,
        settings: StoreSettings,
        clock: Clock,
        *,
        plaintext: bool,
        recovered: CorruptionRecovery | None,
        background: bool,
    ) -> None:
        self._conn = conn
        self._keys = keys
        self._settings = settings
        self._clock = clock
        self._plaintext = plaintext
        self._path = str(settings.path)
        self._lock = threading.RLock()
        self._maint_lock = threading.Lock()
        self._ciphers: dict[str, Cipher] = {}
        self._queue: deque[_Pending] = deque()
        self._cv = threading.Condition()
        self._closing = False
        self._closed = False
        self._head: AuditEntry | None = None
        self._last_checkpoint_seq = 0
        self._batches = 0
        self._health = HealthFlags(recovered_from_corruption=recovered)
        self._load_keys()
        self._load_audit_head()
        self._writer = threading.Thread(target=self._writer_loop, name="store-writer", daemon=True)
        self._writer.start()
        self._stop_evt = threading.Event()
        self._next_maint = clock.monotonic() + settings.purge_interval_s
        self._maint: threading.Thread | None = None
        if background:
            self._maint = threading.Thread(
                target=self._maintenance_loop, name="store-maintenance", daemon=True
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
        _plaintext_benchmark_only: bool = False,
    ) -> Store:
        """Open (creating if absent) the store at ``path``.

        Checks integrity; a corrupt file is moved aside as ``<name>.corrupt-<UTC stamp>`` (with
        its -wal/-shm), a fresh store is created, and the event is audited and flagged in
        :meth:`health`. A store written by newer firmware raises :class:`SchemaTooNew` and is
        left untouched. A KEK that does not match the store raises :class:`KeySourceError`.
        Runs a retention purge and a budget check before returning. ``background`` starts the
        maintenance thread that purges every ``purge_interval_s``.
        """
        path = Path(path)
        settings = _with_path(settings, path)
        try:
            kek = key_source.load_kek()
        except OSError as e:
            raise KeySourceError(f"cannot load KEK from {key_source.describe()}: {e}") from e
        keys = KeyHierarchy(kek)
        del kek
        path.parent.mkdir(parents=True, exist_ok=True)
        recovered: CorruptionRecovery | None = None
        if path.exists():
            try:
                probe = _connect(path)
                try:
                    check_not_newer(probe, str(path))
                    _integrity_check(probe, settings.integrity_check, str(path))
                finally:
                    probe.close()
            except CorruptStore as e:
                recovered = _move_aside(path, clock, str(e))
            except sqlite3.DatabaseError as e:
                recovered = _move_aside(path, clock, f"{type(e).__name__}: {e}")
        conn = _connect(path)
        try:
            _configure(conn, settings)
            before, _ = migrate(conn, str(path))
            _check_meta(conn, keys, plaintext=_plaintext_benchmark_only, fresh=before == 0)
        except BaseException:
            conn.close()
            raise
        store = cls(
            conn,
            keys,
            settings,
            clock,
            plaintext=_plaintext_benchmark_only,
            recovered=recovered,
            background=background,
        )
        if recovered is not None:
            detail = {"moved_to": recovered.moved_to, "reason": recovered.reason}
            log.error("store was corrupt; moved aside and recreated", extra=detail)
            store.audit(
                SYSTEM_ACTOR,
                SYSTEM_ROLE,
                "store.corrupt_recovered",
                "integrity check failed at start",
                "recovered",
                detail,
            )
        store.audit(
            SYSTEM_ACTOR,
            SYSTEM_ROLE,
            "store.open",
            "start",
            "ok",
            {"schema_version": SCHEMA_VERSION, "migrated_from": before},
        )
        store.purge_expired()
        store.enforce_budget()
        if store._maint is not None:
            store._maint.start()
        return store

    def _load_keys(self) -> None:
        rows = self._conn.execute("SELECT day, wrapped FROM day_keys").fetchall()
        for day, wrapped in rows:
            self._ciphers[day] = self._make_cipher(day, wrapped)

    def _make_cipher(self, day: str, wrapped: bytes) -> Cipher:
        if self._plaintext:
            return PlainDayCipher(day)
        return DayCipher(day, self._keys.unwrap_day_key(day, wrapped))

    def _load_audit_head(self) -> None:
        row = self._conn.execute("SELECT * FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        self._head = _entry_from_row(row) if row else None
        cp = self._conn.execute("SELECT max(seq) FROM audit_checkpoints").fetchone()[0]
        self._last_checkpoint_seq = int(cp or 0)

    # ------------------------------------------------------------------ keys

    def _cipher_for_write(self, day: str) -> Cipher:
        cipher = self._ciphers.get(day)
        if cipher is not None:
            return cipher
        with self._lock:
            cipher = self._ciphers.get(day)
            if cipher is not None:
                return cipher
            key = new_day_key()
            wrapped = b"" if self._plaintext else self._keys.wrap_day_key(day, key)
            del key
            # secure_delete around every day_keys write: page rebalancing must not leave stale
            # copies of wrapped keys in free space, or shredding a key would not shred it.
            self._conn.execute("PRAGMA secure_delete = ON")
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                # Another process on this file (the CLI) may have created the day's key first:
                # keep whichever was committed first and use that.
                self._conn.execute(
                    "INSERT INTO day_keys(day, wrapped, created_at) VALUES (?, ?, ?)"
                    " ON CONFLICT(day) DO NOTHING",
                    (day, wrapped, self._clock.utcnow().isoformat()),
                )
                stored = self._conn.execute(
                    "SELECT wrapped FROM day_keys WHERE day = ?", (day,)
                ).fetchone()[0]
                self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            finally:
                self._conn.execute("PRAGMA secure_delete = OFF")
            cipher = self._make_cipher(day, bytes(stored))
            self._ciphers[day] = cipher
            return cipher

    def _cipher_for_read(self, day: str) -> Cipher:
        cipher = self._ciphers.get(day)
        if cipher is not None:
            return cipher
        with self._lock:  # a key created by another process on this file (the CLI)
            row = self._conn.execute(
                "SELECT wrapped FROM day_keys WHERE day = ?", (day,)
            ).fetchone()
            if row is None:
                raise KeyDestroyed(f"day key for {day} was destroyed by retention")
            cipher = self._ciphers[day] = self._make_cipher(day, bytes(row[0]))
            return cipher

    def derive_key(self, purpose: str) -> bytes:
        """A 32-byte subkey of the KEK for another component (e.g. ``"hotlist"``), by HKDF.

        Stable across restarts for the same KEK and purpose; distinct per purpose."""
        return self._keys.derive(purpose)

    def audit_public_key(self) -> bytes:
        """Raw Ed25519 public key that verifies this device's audit checkpoints."""
        return self._keys.public_key_bytes()

    # ------------------------------------------------------------------ writing reads

    def submit_read(self, read: ReadRecord, alerts: Sequence[AlertRecord] = ()) -> Future[None]:
        """Queue a read; the future completes once its transaction has committed (or failed).

        For callers that keep several reads in flight (group commit). ``put_read`` is the
        blocking form.
        """
        for a in alerts:
            if a.read_id != read.read_id:
                raise ValueError(f"alert {a.alert_id} belongs to read {a.read_id}, not this one")
        fut: Future[None] = Future()
        with self._cv:
            if self._closing:
                raise StoreClosed("store is closed")
            self._queue.append(_Pending(read, tuple(alerts), fut))
            self._cv.notify()
        return fut

    def put_read(self, read: ReadRecord, alerts: Sequence[AlertRecord] = ()) -> None:
        """Store a read (and its hotlist alerts) durably; returns only after commit.

        Idempotent: a read whose ``read_id`` is already stored is acknowledged without a second
        copy. Raises :class:`StoreFull` if the disk is full even after dropping what may be
        dropped. Thread-safe.
        """
        self.submit_read(read, alerts).result()

    def _writer_loop(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closing:
                    self._cv.wait()
                if not self._queue:
                    return
                n = min(len(self._queue), self._settings.group_commit_max)
                batch = [self._queue.popleft() for _ in range(n)]
            try:
                self._write_batch(batch)
            except BaseException as e:  # the writer must never die silently
                log.exception("store writer failed a batch", extra={"batch": len(batch)})
                self._health.last_error = f"{type(e).__name__}: {e}"
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(
                            e if isinstance(e, StoreError) else StoreError(str(e))
                        )
            self._batches += 1
            if self._batches % _BUDGET_CHECK_EVERY == 0 and self._over_budget():
                try:
                    self.enforce_budget()
                except StoreError as e:
                    self._health.last_error = f"budget: {e}"

    def _seal(self, p: _Pending, cipher: Cipher) -> _Sealed:
        r = p.read
        rid = r.read_id
        payload = cipher.seal(codec.to_json(codec.read_payload(r)), associated_data(*_AD_READ, rid))
        images = []
        for kind, data in (("crop", r.crop_jpeg), ("overview", r.overview_jpeg)):
            if data:
                sealed = cipher.seal(data, associated_data("images", kind, rid))
                images.append((rid, kind, cipher.day, sealed))
        alert_rows = []
        outbox = []
        for a in p.alerts:
            sealed = cipher.seal(
                codec.to_json(codec.alert_payload(a)), associated_data(*_AD_ALERT, a.alert_id)
            )
            alert_rows.append((a.alert_id, rid, cipher.day, a.priority, sealed))
            outbox.append((a.alert_id, "alert", rid, cipher.day, 0, a.priority))
        outbox.append((rid, "read", rid, cipher.day, 1, 0))
        return _Sealed(
            p,
            (rid, cipher.day, cipher.blind_index(r.plate_text), payload),
            images,
            alert_rows,
            outbox,
        )

    def _write_batch(self, batch: list[_Pending]) -> None:
        cipher = self._cipher_for_write(day_of(self._clock.utcnow()))
        sealed: list[_Sealed] = []
        for p in batch:
            try:
                sealed.append(self._seal(p, cipher))
            except Exception as e:  # a malformed record fails alone, not its batch-mates
                p.future.set_exception(StoreError(f"cannot encode read {p.read.read_id}: {e}"))
        if not sealed:
            return
        try:
            self._commit_sealed(sealed)
        except sqlite3.OperationalError as e:
            if getattr(e, "sqlite_errorcode", None) != _SQLITE_FULL:
                raise StoreError(f"write failed: {e}") from e
            log.warning("disk full while writing reads; dropping by budget order and retrying")
            self.enforce_budget(force_free_bytes=_estimate_bytes(sealed) * 2 + 1_048_576)
            try:
                self._commit_sealed(sealed)
            except sqlite3.OperationalError as e2:
                self._health.last_error = f"store full: {e2}"
                err = StoreFull(f"store full even after dropping droppable data: {e2}")
                for s in sealed:
                    s.pending.future.set_exception(err)
                return
        for s in sealed:
            if not s.pending.future.done():
                s.pending.future.set_result(None)

    def _commit_sealed(self, sealed: list[_Sealed]) -> None:
        conn = self._conn
        with self._lock:
            self._check_open()
            conn.execute("BEGIN IMMEDIATE")
            try:
                ids = [s.read_row[0] for s in sealed]
                existing: set[str] = set()
                for chunk in _chunks(ids, _CHUNK):
                    marks = ",".join("?" * len(chunk))
                    existing.update(
                        r[0]
                        for r in conn.execute(
                            f"SELECT read_id FROM reads WHERE read_id IN ({marks})", chunk
                        )
                    )
                fresh: list[_Sealed] = []
                for s in sealed:
                    if s.read_row[0] in existing:
                        continue  # idempotent re-put: acknowledged, stored once
                    existing.add(s.read_row[0])
                    fresh.append(s)
                if fresh:
                    day = fresh[0].read_row[1]
                    new_plates: set[bytes] = set()
                    for s in fresh:
                        idx = s.read_row[2]
                        if idx in new_plates:
                            continue
                        seen = conn.execute(
                            "SELECT 1 FROM reads WHERE plate_idx = ? AND day = ? LIMIT 1",
                            (idx, day),
                        ).fetchone()
                        if seen is None:
                            new_plates.add(idx)
                    first = conn.execute("SELECT coalesce(max(seq), 0) FROM reads").fetchone()[0]
                    conn.executemany(
                        "INSERT INTO reads(read_id, day, plate_idx, payload) VALUES (?, ?, ?, ?)",
                        [s.read_row for s in fresh],
                    )
                    conn.executemany(
                        "INSERT INTO images(read_id, kind, day, data) VALUES (?, ?, ?, ?)",
                        [row for s in fresh for row in s.image_rows],
                    )
                    alert_rows = [row for s in fresh for row in s.alert_rows]
                    if alert_rows:
                        conn.executemany(
                            "INSERT INTO alerts(alert_id, read_id, day, priority, payload)"
                            " VALUES (?, ?, ?, ?, ?)",
                            alert_rows,
                        )
                    conn.executemany(
                        "INSERT INTO outbox(item_id, kind, read_id, day, rank, priority,"
                        " created_seq) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [
                            (*row, first + i + 1)
                            for i, s in enumerate(fresh)
                            for row in s.outbox_rows
                        ],
                    )
                    self._bump(
                        day,
                        reads=len(fresh),
                        vehicles=len(new_plates),
                        hotlist_hits=len(alert_rows),
                    )
                conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    # ------------------------------------------------------------------ outbox

    def next_outbox_batch(
        self, max_items: int, max_bytes: int, include_images: bool = False
    ) -> list[OutboxItem]:
        """Pending items, alerts first (highest priority first), then reads oldest first.

        Stops before ``max_bytes`` of JSON payload (always at least one item, so one large item
        cannot block the queue). Items that no longer decrypt are set aside as failed,
        counted in :meth:`health`, and audited, rather than retried forever.
        """
        if max_items <= 0:
            return []
        with self._lock:
            self._check_open()
            rows = self._conn.execute(
                "SELECT item_id, kind, read_id, day, attempts FROM outbox"
                " WHERE sent_at IS NULL AND failed_reason IS NULL"
                " ORDER BY rank, priority DESC, created_seq LIMIT ?",
                (max_items,),
            ).fetchall()
            read_ids = sorted({r[2] for r in rows})
            reads = self._fetch_read_payloads(read_ids)
            alert_ids = [r[0] for r in rows if r[1] == "alert"]
            alerts = self._fetch_alert_payloads(alert_ids)
            images = self._fetch_images(read_ids) if include_images else {}
        items: list[OutboxItem] = []
        failed: list[tuple[str, str]] = []
        total = 0
        for item_id, kind, read_id, day, attempts in rows:
            try:
                read_p = self._open_read(reads.get(read_id), read_id)
                if kind == "alert":
                    alert_p = self._open_alert(alerts.get(item_id), item_id)
                    payload: dict[str, Any] = dict(alert_p)
                    payload["read"] = read_p
                    created = datetime.fromisoformat(alert_p["raised_at"])
                else:
                    payload = read_p
                    created = datetime.fromisoformat(read_p["captured_at"])
                if include_images:
                    for kind_img, sealed in images.get(read_id, {}).items():
                        data = self._open_image(sealed, read_id, kind_img, day)
                        payload = dict(payload)
                        payload[f"{kind_img}_jpeg_b64"] = codec.b64(data)
            except KeyDestroyed:
                continue  # purge is deleting this day's rows right now
            except TamperDetected as e:
                failed.append((item_id, f"tamper: {e}"))
                continue
            size = len(codec.to_json(payload))
            if items and total + size > max_bytes:
                break
            total += size
            items.append(OutboxItem(item_id, kind, read_id, payload, created, attempts))
        if failed:
            self._fail_items(failed)
        return items

    def _rows_in(self, sql: str, keys: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """Rows of ``sql`` (one ``{marks}`` placeholder in its IN list) for every key, in
        chunks small enough for SQLite's bound-parameter limit."""
        for chunk in _chunks(list(keys), _CHUNK):
            yield from self._conn.execute(sql.format(marks=",".join("?" * len(chunk))), chunk)

    def _fetch_read_payloads(self, read_ids: Sequence[str]) -> dict[str, tuple[str, bytes]]:
        sql = "SELECT read_id, day, payload FROM reads WHERE read_id IN ({marks})"
        return {rid: (day, payload) for rid, day, payload in self._rows_in(sql, read_ids)}

    def _fetch_alert_payloads(self, alert_ids: Sequence[str]) -> dict[str, tuple[str, bytes]]:
        sql = "SELECT alert_id, day, payload FROM alerts WHERE alert_id IN ({marks})"
        return {aid: (day, payload) for aid, day, payload in self._rows_in(sql, alert_ids)}

    def _fetch_images(self, read_ids: Sequence[str]) -> dict[str, dict[str, bytes]]:
        out: dict[str, dict[str, bytes]] = {}
        sql = "SELECT read_id, kind, data FROM images WHERE read_id IN ({marks})"
        for rid, kind, data in self._rows_in(sql, read_ids):
            out.setdefault(rid, {})[kind] = data
        return out

    def _open_read(self, row: tuple[str, bytes] | None, read_id: str) -> dict[str, Any]:
        if row is None:
            raise TamperDetected(f"read {read_id} is missing")
        day, sealed = row
        payload = codec.from_json(
            self._cipher_for_read(day).open(sealed, associated_data(*_AD_READ, read_id))
        )
        if payload.get("read_id") != read_id:
            raise TamperDetected(f"read {read_id} holds another read's payload")
        return payload

    def _open_alert(self, row: tuple[str, bytes] | None, alert_id: str) -> dict[str, Any]:
        if row is None:
            raise TamperDetected(f"alert {alert_id} is missing")
        day, sealed = row
        return codec.from_json(
            self._cipher_for_read(day).open(sealed, associated_data(*_AD_ALERT, alert_id))
        )

    def _open_image(self, sealed: bytes, read_id: str, kind: str, day: str) -> bytes:
        return self._cipher_for_read(day).open(sealed, associated_data("images", kind, read_id))

    def _fail_items(self, failed: list[tuple[str, str]]) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "UPDATE outbox SET failed_reason = ? WHERE item_id = ?",
                    [(why, iid) for iid, why in failed],
                )
                self._audit_in_txn(
                    SYSTEM_ACTOR,
                    SYSTEM_ROLE,
                    "outbox.undecryptable",
                    "item failed authentication",
                    "set_aside",
                    {"items": len(failed)},
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            self._health.undecryptable_items += len(failed)
        log.error("outbox items failed authentication", extra={"items": len(failed)})

    def mark_sent(self, item_ids: Iterable[str]) -> int:
        """Mark items acknowledged by the server. Idempotent: returns how many were newly
        marked (a repeated acknowledgement counts 0). Audited as data leaving the device."""
        ids = list(dict.fromkeys(item_ids))
        if not ids:
            return 0
        now = self._clock.utcnow()
        with self._lock:
            self._check_open()
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                n = 0
                for chunk in _chunks(ids, _CHUNK):
                    marks = ",".join("?" * len(chunk))
                    n += self._conn.execute(
                        f"UPDATE outbox SET sent_at = ? WHERE item_id IN ({marks})"
                        " AND sent_at IS NULL",
                        (now.isoformat(), *chunk),
                    ).rowcount
                if n:
                    self._bump(day_of(now), uplinked=n)
                    self._audit_in_txn(
                        SYSTEM_ACTOR,
                        "uplink",
                        "uplink.ack",
                        "server acknowledged delivery",
                        "ok",
                        {"items": n},
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        return n

    def record_attempt(self, item_ids: Iterable[str]) -> None:
        """Count one delivery attempt for each item (for back-off and diagnostics)."""
        ids = list(dict.fromkeys(item_ids))
        with self._lock:
            self._check_open()
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for chunk in _chunks(ids, _CHUNK):
                    marks = ",".join("?" * len(chunk))
                    self._conn.execute(
                        f"UPDATE outbox SET attempts = attempts + 1 WHERE item_id IN ({marks})",
                        chunk,
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def outbox_depth(self) -> dict[str, int]:
        with self._lock:
            self._check_open()
            rows = self._conn.execute(
                "SELECT kind, count(*) FROM outbox WHERE sent_at IS NULL AND failed_reason IS NULL"
                " GROUP BY kind"
            ).fetchall()
        depth = {"alerts": 0, "reads": 0}
        for kind, n in rows:
            depth["alerts" if kind == "alert" else "reads"] = int(n)
        return depth

    # ------------------------------------------------------------------ access to read data

    def search_plate(self, text: str, actor: str, role: str, reason: str) -> list[ReadRecord]:
        """Reads of a plate still within retention, newest first, with their images.

        Uses only the blind index (one HMAC per live day key). Refused unless ``role`` is in
        ``search_roles`` and a reason is given; granted and refused searches are both audited
        (the searched plate appears in the audit only as a keyed pseudonym) and counted.
        """
        query = normalise_plate(text)
        detail: dict[str, Any] = {"query": self._keys.pseudonym(query)}
        today = day_of(self._clock.utcnow())
        if role not in self._settings.search_roles or len(reason.strip()) < 3 or not query:
            why = "empty query" if not query else "role not allowed or no reason given"
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    self._bump(today, searches_denied=1)
                    self._audit_in_txn(
                        actor, role, "plate.search", reason, "denied", {**detail, "why": why}
                    )
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._rollback()
                    raise
            raise AccessDenied(f"plate search refused: {why}")
        with self._lock:
            self._check_open()
            wanted = {c.blind_index(query): day for day, c in self._ciphers.items()}
            rows: list[tuple[str, str, bytes, bytes]] = []
            keys = list(wanted)
            for chunk in _chunks(keys, _CHUNK):
                marks = ",".join("?" * len(chunk))
                rows.extend(
                    self._conn.execute(
                        "SELECT read_id, day, plate_idx, payload FROM reads"
                        f" WHERE plate_idx IN ({marks}) ORDER BY seq DESC",
                        chunk,
                    ).fetchall()
                )
            matching = [r for r in rows if wanted.get(r[2]) == r[1]]
            images = self._fetch_images([r[0] for r in matching])
        results = []
        for rid, day, _idx, sealed in matching:
            p = self._open_read((day, sealed), rid)
            if normalise_plate(p["plate_text"]) != query:
                continue
            imgs = {k: self._open_image(v, rid, k, day) for k, v in images.get(rid, {}).items()}
            results.append(codec.read_from_payload(p, imgs.get("crop"), imgs.get("overview")))
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._bump(today, searches=1)
                self._audit_in_txn(
                    actor, role, "plate.search", reason, "ok", {**detail, "results": len(results)}
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        return results

    def get_reads(
        self, read_ids: Sequence[str], actor: str, role: str, reason: str
    ) -> list[ReadRecord]:
        """Decrypt reads by id (with images), audited. Missing or purged ids are skipped;
        a read that fails authentication raises :class:`TamperDetected`."""
        with self._lock:
            self._check_open()
            rows = self._fetch_read_payloads(read_ids)
            images = self._fetch_images(list(rows))
        out = []
        for rid in read_ids:
            row = rows.get(rid)
            if row is None:
                continue
            day = row[0]
            try:
                p = self._open_read(row, rid)
            except KeyDestroyed:
                continue
            imgs = {k: self._open_image(v, rid, k, day) for k, v in images.get(rid, {}).items()}
            out.append(codec.read_from_payload(p, imgs.get("crop"), imgs.get("overview")))
        self.audit(
            actor,
            role,
            "reads.get",
            reason,
            "ok",
            {"requested": len(read_ids), "results": len(out)},
        )
        return out

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
        with self._lock:
            self._check_open()
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                entry = self._audit_in_txn(actor, role, action, reason, result, detail)
                self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            return entry

    def _audit_in_txn(
        self,
        actor: str,
        role: str,
        action: str,
        reason: str,
        result: str,
        detail: dict[str, Any] | None,
    ) -> AuditEntry:
        # JSON round trip so the hash covers exactly what is stored (tuples become lists).
        det = json.loads(json.dumps(detail or {}, sort_keys=True, default=str))
        head = self._db_head()
        entry = audit_mod.make_entry(
            head, self._clock.utcnow(), actor, role, action, reason, result, det
        )
        self._conn.execute(
            "INSERT INTO audit(seq, ts, actor, role, action, reason, result, detail, prev_hash,"
            " entry_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.seq,
                entry.ts.isoformat(),
                actor,
                role,
                action,
                reason,
                result,
                json.dumps(det, sort_keys=True),
                entry.prev_hash,
                entry.entry_hash,
            ),
        )
        if entry.seq % self._settings.checkpoint_every == 0:
            self._insert_checkpoint(entry)
        self._head = entry
        return entry

    def _db_head(self) -> AuditEntry | None:
        # Re-read inside the transaction: a rolled-back append must not leave a stale head.
        row = self._conn.execute("SELECT * FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return _entry_from_row(row) if row else None

    def _insert_checkpoint(self, entry: AuditEntry) -> None:
        cp = audit_mod.sign_checkpoint(self._keys.signing_key, entry, self._clock.utcnow())
        self._conn.execute(
            "INSERT OR REPLACE INTO audit_checkpoints(seq, entry_hash, signed_at, signature)"
            " VALUES (?, ?, ?, ?)",
            (cp.seq, cp.entry_hash, cp.signed_at.isoformat(), cp.signature),
        )
        self._last_checkpoint_seq = cp.seq

    def checkpoint_audit(self) -> AuditCheckpoint | None:
        """Sign the current head of the chain (done every ``checkpoint_every`` entries and at
        close). Returns the checkpoint, or None when the log is empty."""
        with self._lock:
            self._check_open()
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                head = self._db_head()
                if head is not None:
                    self._insert_checkpoint(head)
                self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        cps = self.audit_checkpoints()
        return cps[-1] if cps else None

    def audit_entries(self, since_seq: int = 1) -> Iterator[AuditEntry]:
        with self._lock:
            self._check_open()
            rows = self._conn.execute(
                "SELECT * FROM audit WHERE seq >= ? ORDER BY rowid", (since_seq,)
            ).fetchall()
        for row in rows:
            yield _entry_from_row(row)

    def audit_checkpoints(self) -> list[AuditCheckpoint]:
        with self._lock:
            self._check_open()
            rows = self._conn.execute(
                "SELECT seq, entry_hash, signed_at, signature FROM audit_checkpoints ORDER BY seq"
            ).fetchall()
        return [
            AuditCheckpoint(s, bytes(h), datetime.fromisoformat(t), bytes(g)) for s, h, t, g in rows
        ]

    def verify_audit(self) -> VerifyReport:
        return audit_mod.verify_chain(
            self.audit_entries(), self.audit_public_key(), self.audit_checkpoints()
        )

    def export_audit(self, out: IO[str]) -> int:
        """Write the anonymised chain as JSON lines (one header line, then entries). Audited."""
        entries = list(self.audit_entries())
        cps = self.audit_checkpoints()
        header = {
            "format": "vigil-audit-export/1",
            "public_key": self.audit_public_key().hex(),
            "checkpoints": [
                {"seq": c.seq, "entry_hash": c.entry_hash.hex(), "signature": c.signature.hex()}
                for c in cps
            ],
        }
        out.write(json.dumps(header, sort_keys=True) + "\n")
        for e in entries:
            out.write(json.dumps(audit_mod.anonymise(e), sort_keys=True) + "\n")
        self.audit(
            SYSTEM_ACTOR,
            SYSTEM_ROLE,
            "audit.export",
            "transparency export",
            "ok",
            {"items": len(entries)},
        )
        return len(entries)

    # ------------------------------------------------------------------ counters

    def _bump(self, day: str, **counts: int) -> None:
        rows = [(day, name, n) for name, n in counts.items() if n]
        if rows:
            self._conn.executemany(
                "INSERT INTO counters(day, name, value) VALUES (?, ?, ?)"
                " ON CONFLICT(day, name) DO UPDATE SET value = value + excluded.value",
                rows,
            )

    def stats(self, window_days: int = 30) -> dict[str, Any]:
        """Transparency counters summed over the last ``window_days`` UTC days (today included).

        ``vehicles`` is the sum of distinct plates per day (a vehicle seen on two days counts
        twice): cross-day distinct counts would need cross-day linkable data, which retention
        forbids keeping.
        """
        if not 1 <= window_days <= 3660:
            raise ValueError("window_days must be 1..3660")
        today = self._clock.utcnow().date()
        since = window_start(today, window_days)
        with self._lock:
            self._check_open()
            rows = self._conn.execute(
                "SELECT name, sum(value) FROM counters WHERE day >= ? GROUP BY name", (since,)
            ).fetchall()
            stored = self._conn.execute("SELECT count(*) FROM reads").fetchone()[0]
        names = (
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
        )
        out: dict[str, Any] = {n: 0 for n in names}
        out.update({n: int(v) for n, v in rows})
        out.update(
            window_days=window_days,
            since=since,
            until=today.isoformat(),
            stored_reads=int(stored),
            outbox=self.outbox_depth(),
        )
        return out

    # ------------------------------------------------------------------ retention

    def purge_expired(self) -> PurgeResult:
        """Crypto-shred every day older than retention, then delete its rows and reclaim space.

        The day keys go first, in their own committed transaction with ``secure_delete`` on,
        so from that commit on the day's ciphertexts are noise even in free pages or a copy
        of the file. A crash after that leaves keyless rows, deleted by the next purge.
        """
        t0 = time.perf_counter()
        with self._maint_lock:
            today = self._clock.utcnow().date()
            with self._lock:
                self._check_open()
                key_days = [r[0] for r in self._conn.execute("SELECT day FROM day_keys")]
                data_days: set[str] = set()
                for table in ("reads", "images", "alerts", "outbox"):
                    data_days.update(
                        r[0] for r in self._conn.execute(f"SELECT DISTINCT day FROM {table}")
                    )
            doomed_keys = expired_days(key_days, today, self._settings.retention_days)
            orphan_days = sorted(d for d in data_days if d not in set(key_days))
            doomed = sorted(
                set(doomed_keys)
                | set(orphan_days)
                | set(expired_days(data_days, today, self._settings.retention_days))
            )
            self._health.last_purge_at = self._clock.utcnow()
            if not doomed:
                return PurgeResult((), 0, 0, 0, 0, time.perf_counter() - t0)
            with self._lock:
                self._conn.execute("PRAGMA secure_delete = ON")
                try:
                    self._conn.execute("BEGIN IMMEDIATE")
                    marks = ",".join("?" * len(doomed))
                    self._conn.execute(f"DELETE FROM day_keys WHERE day IN ({marks})", doomed)
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._rollback()
                    raise
                finally:
                    self._conn.execute("PRAGMA secure_delete = OFF")
                for d in doomed:
                    self._ciphers.pop(d, None)
            counts = {"images": 0, "alerts": 0, "unsent_outbox": 0, "reads": 0}
            for day in doomed:
                counts["unsent_outbox"] += self._count(
                    "SELECT count(*) FROM outbox WHERE day = ? AND sent_at IS NULL", day
                )
                counts["images"] += self._delete_day("images", day)
                counts["alerts"] += self._delete_day("alerts", day)
                self._delete_day("outbox", day)
                counts["reads"] += self._delete_day("reads", day)
            result = PurgeResult(
                tuple(doomed),
                counts["reads"],
                counts["images"],
                counts["alerts"],
                counts["unsent_outbox"],
                0.0,
            )
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    now_day = today.isoformat()
                    self._bump(now_day, purges=1, purged_reads=counts["reads"])
                    old = today.toordinal() - self._settings.counters_keep_days
                    self._conn.execute(
                        "DELETE FROM counters WHERE day < ?",
                        (datetime.fromordinal(old).date().isoformat(),),
                    )
                    self._audit_in_txn(
                        SYSTEM_ACTOR,
                        SYSTEM_ROLE,
                        "retention.purge",
                        f"older than {self._settings.retention_days} days",
                        "ok",
                        {"days": list(doomed), **counts},
                    )
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._rollback()
                    raise
            self._reclaim()
            result = PurgeResult(
                result.days,
                result.reads,
                result.images,
                result.alerts,
                result.unsent_outbox,
                time.perf_counter() - t0,
            )
            log.info(
                "retention purge",
                extra={"days": list(doomed), **counts, "duration_s": round(result.duration_s, 3)},
            )
            return result

    def _count(self, sql: str, *args: Any) -> int:
        with self._lock:
            return int(self._conn.execute(sql, args).fetchone()[0])

    def _delete_day(self, table: str, day: str) -> int:
        total = 0
        pk = "item_id" if table == "outbox" else "seq"
        while True:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    n = self._conn.execute(
                        f"DELETE FROM {table} WHERE {pk} IN"
                        f" (SELECT {pk} FROM {table} WHERE day = ? LIMIT {_CHUNK * 4})",
                        (day,),
                    ).rowcount
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._rollback()
                    raise
            total += n
            if n == 0:
                return total

    def _reclaim(self) -> None:
        """Give freed pages back to the filesystem and truncate the WAL."""
        # In steps of 2,000 pages, releasing the lock between them, so reads keep being
        # acknowledged while gigabytes are given back. executescript steps the pragma to
        # completion (execute() would free a single page).
        while True:
            with self._lock:
                if self._closed:
                    return
                self._conn.executescript("PRAGMA incremental_vacuum(2000);")
                left = self._conn.execute("PRAGMA freelist_count").fetchone()[0]
            if not left:
                break
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # ------------------------------------------------------------------ disk budget

    def used_bytes(self) -> int:
        """Bytes of live database pages plus the current WAL file."""
        with self._lock:
            ps = self._conn.execute("PRAGMA page_size").fetchone()[0]
            pc = self._conn.execute("PRAGMA page_count").fetchone()[0]
            fl = self._conn.execute("PRAGMA freelist_count").fetchone()[0]
        try:
            wal = os.path.getsize(self._path + "-wal")
        except OSError:
            wal = 0
        return int((pc - fl) * ps + wal)

    def _budget_bytes(self) -> int:
        return int(self._settings.max_db_mb * 1024 * 1024)

    def _over_budget(self) -> bool:
        return self.used_bytes() > self._budget_bytes()

    def enforce_budget(self, *, force_free_bytes: int = 0) -> BudgetResult:
        """Drop data until usage is under ``budget_low_water`` x ``max_db_mb``.

        Order: overview images, plate crops, oldest already-sent reads, then (if allowed by
        ``drop_unsent_reads_when_full``) oldest unsent plain reads. Nothing belonging to a read
        with an unsent alert is ever dropped. Every drop is counted and audited.
        """
        with self._maint_lock:
            budget = self._budget_bytes()
            before = self.used_bytes()
            target = int(budget * self._settings.budget_low_water)
            dropped = {
                "overview_dropped": 0,
                "crops_dropped": 0,
                "sent_reads_dropped": 0,
                "unsent_reads_dropped": 0,
            }
            if before > budget or force_free_bytes:
                self._wal_truncate()
                if force_free_bytes:
                    # Measured after the WAL truncation, which frees nothing inside the file.
                    target = min(target, self.used_bytes() - force_free_bytes)
                protect = (
                    "NOT EXISTS (SELECT 1 FROM outbox o WHERE o.read_id = {t}.read_id"
                    " AND o.kind = 'alert' AND o.sent_at IS NULL)"
                )
                steps: list[tuple[str, str]] = [
                    (
                        "overview_dropped",
                        "SELECT seq, read_id FROM images i WHERE kind = 'overview' AND "
                        + protect.format(t="i")
                        + " ORDER BY seq LIMIT ?",
                    ),
                    (
                        "crops_dropped",
                        "SELECT seq, read_id FROM images i WHERE kind = 'crop' AND "
                        + protect.format(t="i")
                        + " ORDER BY seq LIMIT ?",
                    ),
                    (
                        "sent_reads_dropped",
                        "SELECT r.seq, r.read_id FROM reads r JOIN outbox ob ON"
                        " ob.item_id = r.read_id WHERE ob.sent_at IS NOT NULL AND "
                        + protect.format(t="r")
                        + " ORDER BY r.seq LIMIT ?",
                    ),
                ]
                if self._settings.drop_unsent_reads_when_full:
                    steps.append(
                        (
                            "unsent_reads_dropped",
                            "SELECT r.seq, r.read_id FROM reads r WHERE "
                            + protect.format(t="r")
                            + " ORDER BY r.seq LIMIT ?",
                        )
                    )
                for name, select in steps:
                    while self.used_bytes() > target:
                        n = self._drop_chunk(name, select)
                        if n == 0:
                            break
                        dropped[name] += n
            after = self.used_bytes()
            result = BudgetResult(before, after, budget, over_budget=after > budget, **dropped)
            self._health.over_budget = result.over_budget
            if result.dropped_anything:
                now = self._clock.utcnow()
                self._health.last_budget_drop_at = now
                with self._lock:
                    self._conn.execute("BEGIN IMMEDIATE")
                    try:
                        self._bump(day_of(now), **dropped)
                        self._audit_in_txn(
                            SYSTEM_ACTOR,
                            SYSTEM_ROLE,
                            "budget.drop",
                            f"store above {self._settings.max_db_mb} MB budget",
                            "over_budget" if result.over_budget else "ok",
                            {**dropped, "bytes_before": before, "bytes_after": after},
                        )
                        self._conn.execute("COMMIT")
                    except BaseException:
                        self._rollback()
                        raise
                self._reclaim()
                log.warning("store budget enforced", extra={**dropped, "bytes_after": after})
            if result.over_budget:
                log.error(
                    "store still over budget: only data tied to unsent alerts/reads left",
                    extra={"bytes": after, "budget_bytes": budget},
                )
            return result

    def _drop_chunk(self, name: str, select: str) -> int:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                rows = self._conn.execute(select, (_CHUNK // 5,)).fetchall()
                if rows:
                    seqs = [r[0] for r in rows]
                    marks = ",".join("?" * len(seqs))
                    if name in ("overview_dropped", "crops_dropped"):
                        self._conn.execute(f"DELETE FROM images WHERE seq IN ({marks})", seqs)
                    else:
                        rids = [r[1] for r in rows]
                        rmarks = ",".join("?" * len(rids))
                        for table in ("images", "alerts", "outbox"):
                            self._conn.execute(
                                f"DELETE FROM {table} WHERE read_id IN ({rmarks})", rids
                            )
                        self._conn.execute(f"DELETE FROM reads WHERE seq IN ({marks})", seqs)
                self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        return len(rows)

    def _wal_truncate(self) -> None:
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # ------------------------------------------------------------------ maintenance & health

    def maintenance(self) -> None:
        """Run purge and budget enforcement if ``purge_interval_s`` has elapsed (monotonic)."""
        if self._clock.monotonic() < self._next_maint:
            return
        self._next_maint = self._clock.monotonic() + self._settings.purge_interval_s
        self.purge_expired()
        self.enforce_budget()

    def _maintenance_loop(self) -> None:
        while not self._stop_evt.wait(1.0):
            try:
                self.maintenance()
            except StoreClosed:
                return
            except Exception as e:  # keep maintaining; the failure is visible in health()
                log.exception("store maintenance failed")
                self._health.last_error = f"maintenance: {type(e).__name__}: {e}"

    def health(self) -> StoreHealth:
        """The store's health (see :class:`StoreHealth`): ``degraded`` while over budget or after
        a corruption recovery; ``ok`` False then and after an error."""
        live: dict[str, Any] = {}
        if not self._closed:
            live = {
                "used_bytes": self.used_bytes(),
                "budget_bytes": self._budget_bytes(),
                "outbox": self.outbox_depth(),
                "live_days": tuple(sorted(self._ciphers)),
            }
        return self._health.snapshot(
            schema_version=SCHEMA_VERSION, plaintext=self._plaintext, **live
        )

    # ------------------------------------------------------------------ lifecycle

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("store is closed")

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def close(self) -> None:
        """Drain queued reads, sign the audit head, checkpoint the WAL, close. Idempotent."""
        if self._closed:
            return
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._writer.join()
        self._stop_evt.set()
        if self._maint is not None and self._maint.is_alive():
            self._maint.join()
        try:
            self.audit(SYSTEM_ACTOR, SYSTEM_ROLE, "store.close", "shutdown", "ok")
            self.checkpoint_audit()
            with self._lock:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            with self._lock:
                self._closed = True
                self._conn.close()


# ---------------------------------------------------------------------- module helpers


def _with_path(settings: StoreSettings, path: Path) -> StoreSettings:
    if Path(settings.path) == path:
        return settings
    from dataclasses import replace

    return replace(settings, path=path)


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30.0)


def _configure(conn: sqlite3.Connection, settings: StoreSettings) -> None:
    fresh = conn.execute("PRAGMA page_count").fetchone()[0] == 0
    if fresh:
        # Both only take effect before the first table exists.
        conn.execute(f"PRAGMA page_size = {settings.page_size:d}")
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreError(f"cannot enable WAL on {settings.path} (got {mode})")
    conn.execute("PRAGMA synchronous = FULL")
    budget = int(settings.max_db_mb * 1024 * 1024)
    conn.execute(f"PRAGMA journal_size_limit = {max(1 << 20, min(64 << 20, budget // 8)):d}")
    conn.execute("PRAGMA cache_size = -16000")
    conn.execute("PRAGMA secure_delete = OFF")


def _integrity_check(conn: sqlite3.Connection, mode: str, path: str) -> None:
    if mode == "off":
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return
    pragma = "quick_check" if mode == "quick" else "integrity_check"
    rows = conn.execute(f"PRAGMA {pragma}").fetchall()
    if [r[0] for r in rows] != ["ok"]:
        raise CorruptStore(f"{path}: {pragma} failed: " + "; ".join(str(r[0]) for r in rows[:5]))


def _move_aside(path: Path, clock: Clock, reason: str) -> CorruptionRecovery:
    stamp = clock.utcnow().strftime("%Y%m%dT%H%M%S%fZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        side = Path(str(path) + suffix)
        if side.exists():
            os.replace(side, Path(str(target) + suffix))
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return CorruptionRecovery(moved_to=str(target), reason=reason[:500])


def _check_meta(
    conn: sqlite3.Connection, keys: KeyHierarchy, *, plaintext: bool, fresh: bool
) -> None:
    rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    check = keys.key_check.hex()
    mode = "plaintext-benchmark" if plaintext else "encrypted"
    if fresh or not rows:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
            [("key_check", check), ("mode", mode)],
        )
        conn.execute("COMMIT")
        return
    if rows.get("mode") != mode:
        raise StoreError(f"store mode is {rows.get('mode')!r}, expected {mode!r}")
    if rows.get("key_check") != check:
        raise KeySourceError(
            "the KEK from the key source does not match this store (was the key file replaced "
            "or the store copied from another unit?); refusing to open rather than lose data"
        )


def _entry_from_row(row: Sequence[Any]) -> AuditEntry:
    seq, ts, actor, role, action, reason, result, detail, prev_hash, entry_hash = row
    return AuditEntry(
        int(seq),
        datetime.fromisoformat(ts),
        actor,
        role,
        action,
        reason,
        result,
        json.loads(detail),
        bytes(prev_hash),
        bytes(entry_hash),
    )


def _chunks(items: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _estimate_bytes(sealed: list[_Sealed]) -> int:
    return sum(len(s.read_row[3]) + sum(len(r[3]) for r in s.image_rows) for s in sealed)
