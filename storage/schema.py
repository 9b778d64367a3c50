"""Schema and numbered migrations. ``PRAGMA user_version`` holds the schema version.

Plaintext columns are only what queries need and what reveals no person: row ids, the UTC day
(the key id and the retention unit), keyed blind indexes, priorities and outbox state. Plates,
times, places, alert matches and images are sealed per field under the day key.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from storage.db import transaction
from storage.errors import SchemaTooNew

SCHEMA_VERSION = 3

_V1 = (
    """CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE day_keys (
        day TEXT PRIMARY KEY, wrapped BLOB NOT NULL, created_at TEXT NOT NULL)""",
    """CREATE TABLE reads (
        seq INTEGER PRIMARY KEY,
        read_id TEXT NOT NULL UNIQUE,
        day TEXT NOT NULL,
        plate_idx BLOB NOT NULL,
        payload BLOB NOT NULL)""",
    "CREATE INDEX reads_day ON reads(day)",
    "CREATE INDEX reads_plate ON reads(plate_idx, day)",
    """CREATE TABLE images (
        seq INTEGER PRIMARY KEY,
        read_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('crop', 'overview')),
        day TEXT NOT NULL,
        data BLOB NOT NULL,
        UNIQUE (read_id, kind))""",
    "CREATE INDEX images_day ON images(day)",
    "CREATE INDEX images_kind ON images(kind, seq)",
    """CREATE TABLE alerts (
        seq INTEGER PRIMARY KEY,
        alert_id TEXT NOT NULL UNIQUE,
        read_id TEXT NOT NULL,
        day TEXT NOT NULL,
        priority INTEGER NOT NULL,
        payload BLOB NOT NULL)""",
    "CREATE INDEX alerts_read ON alerts(read_id)",
    "CREATE INDEX alerts_day ON alerts(day)",
    """CREATE TABLE outbox (
        item_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('alert', 'read')),
        read_id TEXT NOT NULL,
        day TEXT NOT NULL,
        rank INTEGER NOT NULL,
        priority INTEGER NOT NULL,
        created_seq INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        sent_at TEXT,
        failed_reason TEXT)""",
    """CREATE INDEX outbox_pending ON outbox(rank, priority DESC, created_seq)
        WHERE sent_at IS NULL AND failed_reason IS NULL""",
    "CREATE INDEX outbox_read ON outbox(read_id)",
    "CREATE INDEX outbox_day ON outbox(day)",
    """CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        actor TEXT NOT NULL,
        role TEXT NOT NULL,
        action TEXT NOT NULL,
        reason TEXT NOT NULL,
        result TEXT NOT NULL,
        detail TEXT NOT NULL,
        prev_hash BLOB NOT NULL,
        entry_hash BLOB NOT NULL)""",
    """CREATE TABLE audit_checkpoints (
        seq INTEGER PRIMARY KEY,
        entry_hash BLOB NOT NULL,
        signed_at TEXT NOT NULL,
        signature BLOB NOT NULL)""",
    """CREATE TABLE counters (
        day TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL,
        PRIMARY KEY (day, name)) WITHOUT ROWID""",
)


def _v1(db: sqlite3.Connection) -> None:
    for statement in _V1:
        db.execute(statement)


def _v2(db: sqlite3.Connection) -> None:
    """Reads say in plaintext what time sync said of their clock (the same flags are sealed in
    the payload, with the offset): evidence checks can count reads with a doubtful time without
    opening them, and the flags reveal no person. NULL: stored before schema 2, not recorded."""
    db.execute("ALTER TABLE reads ADD COLUMN clock_flags TEXT")


def _v3(db: sqlite3.Connection) -> None:
    """Tamper evidence for what is not sealed, and room for damaged keys.

    ``outbox.mac`` and ``alerts.mac``: HMAC-SHA256 under a KEK-derived key over the row's
    delivery state and links (``storage.rowmac``), so an alert cannot be suppressed, marked
    sent or pointed at another read by someone without the KEK. NULL until the store stamps
    them (once, right after this migration; ``meta.rowmac``). ``damaged_day_keys``: wrapped
    day keys that no longer authenticate, moved out of ``day_keys`` so the unit keeps
    running; their day's rows are set aside until the day expires."""
    db.execute("ALTER TABLE outbox ADD COLUMN mac BLOB")
    db.execute("ALTER TABLE alerts ADD COLUMN mac BLOB")
    db.execute(
        "CREATE TABLE damaged_day_keys (day TEXT PRIMARY KEY, wrapped BLOB NOT NULL,"
        " found_at TEXT NOT NULL)"
    )


#: version -> migration bringing the schema from version-1 to version. Never edit a released one.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _v1, 2: _v2, 3: _v3}


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def check_not_newer(conn: sqlite3.Connection, path: str) -> int:
    version = schema_version(conn)
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"{path} has schema version {version}; this firmware understands up to "
            f"{SCHEMA_VERSION}. It was written by newer firmware: update this unit, or roll the "
            "store back from a backup. The file was not modified."
        )
    return version


def migrate(conn: sqlite3.Connection, path: str) -> tuple[int, int]:
    """Apply missing migrations, each in its own transaction with its version bump.

    Returns (version before, version after). Expects ``conn`` in autocommit mode.
    """
    before = check_not_newer(conn, path)
    for version in range(before + 1, SCHEMA_VERSION + 1):
        with transaction(conn):
            MIGRATIONS[version](conn)
            conn.execute(f"PRAGMA user_version = {version:d}")
    return before, SCHEMA_VERSION
