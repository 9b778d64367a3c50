"""The audit chain in the database: appending, signed checkpoints, reading back, export.

The chain itself (hashing, signatures, verification, anonymisation) is :mod:`storage.audit`,
pure functions; this module only stores and loads it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import IO, Any

from drivers.clock import Clock
from storage import audit as chain
from storage.crypto import KeyHierarchy
from storage.db import Database
from storage.records import AuditCheckpoint, AuditEntry, VerifyReport

#: ``meta`` key: the number of the last checkpoint the agency acknowledged.
_PUBLISHED = "audit_published"
#: Actor and role of the entries the firmware itself writes.
SYSTEM_ACTOR = "vigil"
SYSTEM_ROLE = "system"


class AuditLog:
    def __init__(
        self, db: Database, keys: KeyHierarchy, checkpoint_every: int, clock: Clock
    ) -> None:
        self._db = db
        self._keys = keys
        self._checkpoint_every = checkpoint_every
        self._clock = clock

    def append(
        self,
        actor: str,
        role: str,
        action: str,
        reason: str,
        result: str,
        detail: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Append one entry in its own transaction, committed before returning."""
        with self._db.transaction() as conn:
            return self.append_in(conn, actor, role, action, reason, result, detail)

    def append_in(
        self,
        conn: sqlite3.Connection,
        actor: str,
        role: str,
        action: str,
        reason: str,
        result: str,
        detail: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Append one entry inside the caller's open transaction (the operation audited), so
        the entry and the operation commit or roll back together."""
        # JSON round trip so the hash covers exactly what is stored (tuples become lists).
        det = json.loads(json.dumps(detail or {}, sort_keys=True, default=str))
        entry = chain.make_entry(
            _head(conn), self._clock.utcnow(), actor, role, action, reason, result, det
        )
        conn.execute(
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
        if entry.seq % self._checkpoint_every == 0:
            self._insert_checkpoint(conn, entry)
        return entry

    def _insert_checkpoint(self, conn: sqlite3.Connection, entry: AuditEntry) -> None:
        cp = chain.sign_checkpoint(self._keys.signing_key, entry, self._clock.utcnow())
        conn.execute(
            "INSERT OR REPLACE INTO audit_checkpoints(seq, entry_hash, signed_at, signature)"
            " VALUES (?, ?, ?, ?)",
            (cp.seq, cp.entry_hash, cp.signed_at.isoformat(), cp.signature),
        )

    def checkpoint(self) -> AuditCheckpoint | None:
        """Sign the current head of the chain. Returns the newest checkpoint, or None when the
        log is empty."""
        with self._db.transaction() as conn:
            head = _head(conn)
            if head is not None:
                self._insert_checkpoint(conn, head)
        cps = self.checkpoints()
        return cps[-1] if cps else None

    def sign_head(self) -> AuditCheckpoint | None:
        """A checkpoint of the current head, signed now and not stored: what the uplink
        publishes with each batch and heartbeat (None while the log is empty). Its number is
        one past the last one the agency acknowledged (:meth:`published`)."""
        with self._db.locked() as conn:
            head = _head(conn)
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (_PUBLISHED,)).fetchone()
        if head is None:
            return None
        number = (int(row[0]) if row else 0) + 1
        return chain.sign_checkpoint(self._keys.signing_key, head, self._clock.utcnow(), number)

    def published(self, number: int) -> None:
        """The agency acknowledged the request that carried checkpoint ``number``."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET"
                " value = max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
                (_PUBLISHED, str(number)))

    def last_detail(self, actions: Sequence[str], key: str) -> Any:
        with self._db.locked() as conn:
            row = conn.execute(
                f"SELECT detail FROM audit WHERE action IN ({','.join('?' * len(actions))})"
                " AND json_extract(detail, '$.' || ?) IS NOT NULL ORDER BY seq DESC LIMIT 1",
                (*actions, key)).fetchone()
        return None if row is None else json.loads(row[0]).get(key)

    def entries(self, since_seq: int = 1) -> Iterator[AuditEntry]:
        with self._db.locked() as conn:
            rows = conn.execute(
                "SELECT * FROM audit WHERE seq >= ? ORDER BY rowid", (since_seq,)
            ).fetchall()
        for row in rows:
            yield _entry_from_row(row)

    def checkpoints(self) -> list[AuditCheckpoint]:
        with self._db.locked() as conn:
            rows = conn.execute(
                "SELECT seq, entry_hash, signed_at, signature FROM audit_checkpoints ORDER BY seq"
            ).fetchall()
        return [
            AuditCheckpoint(s, bytes(h), datetime.fromisoformat(t), bytes(g)) for s, h, t, g in rows
        ]

    def public_key(self) -> bytes:
        return self._keys.public_key_bytes()

    def verify(self) -> VerifyReport:
        return chain.verify_chain(self.entries(), self.public_key(), self.checkpoints())

    def export(self, out: IO[str]) -> int:
        """Write the anonymised chain as JSON lines (one header line, then entries). Audited."""
        entries = list(self.entries())
        cps = self.checkpoints()
        header = {
            "format": "vigil-audit-export/1",
            "public_key": self.public_key().hex(),
            "checkpoints": [
                {"seq": c.seq, "entry_hash": c.entry_hash.hex(), "signature": c.signature.hex()}
                for c in cps
            ],
        }
        out.write(json.dumps(header, sort_keys=True) + "\n")
        for e in entries:
            out.write(json.dumps(chain.anonymise(e), sort_keys=True) + "\n")
        self.append(
            SYSTEM_ACTOR,
            SYSTEM_ROLE,
            "audit.export",
            "transparency export",
            "ok",
            {"items": len(entries)},
        )
        return len(entries)


def _head(conn: sqlite3.Connection) -> AuditEntry | None:
    # Read inside the transaction: a rolled-back append must not leave a stale head.
    row = conn.execute("SELECT * FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    return _entry_from_row(row) if row else None


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
