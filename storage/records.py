"""Records stored and forwarded by the store. Frozen, typed, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

LOCATION_SOURCES = ("gps", "site", "none")


def _require_utc(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value!r}")


@dataclass(frozen=True, slots=True)
class ReadRecord:
    """One plate read as stored: the voted result of a vehicle pass plus images.

    ``frame_monotonic_s`` is the camera's monotonic timestamp of the best frame (seconds);
    ``box`` is (x0, y0, x1, y1) in pixels of the overview frame.
    """

    read_id: str
    captured_at: datetime
    frame_monotonic_s: float
    camera_id: str
    latitude: float | None
    longitude: float | None
    location_source: str
    direction: str | None
    plate_text: str
    confidence: float
    char_confidences: tuple[float, ...]
    candidates: tuple[tuple[str, float], ...]
    region: str | None
    plate_class: str
    box: tuple[float, float, float, float]
    frames_used: int
    clock_synced: bool
    # What time sync said of the clock when the read was stamped (firmware.link.timesync):
    # flags among "clock_unsynced", "clock_jumped", "clock_offset", and the OS clock's offset
    # from the GPS reference in seconds (None: no recent reference). Reads stored before
    # schema 2 carry () and None.
    clock_flags: tuple[str, ...] = ()
    clock_offset_s: float | None = None
    crop_jpeg: bytes | None = field(default=None, repr=False)
    overview_jpeg: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _require_utc("captured_at", self.captured_at)
        if self.location_source not in LOCATION_SOURCES:
            raise ValueError(f"location_source must be one of {LOCATION_SOURCES}")
        if not self.read_id:
            raise ValueError("read_id must be a non-empty UUID string")


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """A hotlist hit raised for a read. Higher ``priority`` is forwarded first."""

    alert_id: str
    read_id: str
    hotlist_name: str
    hotlist_version: int
    matched_entry: str
    rule: str
    reason: str
    priority: int
    raised_at: datetime

    def __post_init__(self) -> None:
        _require_utc("raised_at", self.raised_at)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One item the uplink must deliver. ``item_id`` is stable across retries (idempotency key):
    the read's UUID for a read, the alert's UUID for an alert."""

    item_id: str
    kind: Literal["alert", "read"]
    read_id: str
    payload: dict[str, Any]
    created_at: datetime
    attempts: int


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One link of the append-only audit chain.

    ``entry_hash = SHA-256(prev_hash || canonical JSON of the other fields)``; see
    :mod:`storage.audit`.
    """

    seq: int
    ts: datetime
    actor: str
    role: str
    action: str
    reason: str
    result: str
    detail: Mapping[str, Any]
    prev_hash: bytes
    entry_hash: bytes


@dataclass(frozen=True, slots=True)
class AuditCheckpoint:
    """A signature by the device key over (seq, entry_hash, signed_at, number) of one audit
    entry. ``number`` counts the checkpoints published off the unit (1, 2, ...; it only moves
    on once the agency acknowledged the previous one), 0 for one kept on the unit only."""

    seq: int
    entry_hash: bytes
    signed_at: datetime
    signature: bytes
    number: int = 0


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Result of :func:`storage.audit.verify_chain`. ``problems`` is empty when ``ok``."""

    ok: bool
    entries: int
    last_seq: int
    checkpoints_verified: int
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """What one retention purge destroyed. ``days`` are the UTC day keys shredded;
    ``unsent_outbox`` the undelivered items destroyed with them (only ever those of days whose
    key was already gone). ``held_days`` are expired days kept for their ``held_unsent``
    undelivered items. ``complete`` is False while the shredded keys' last copies are still
    in the database file or WAL (a checkpoint blocked by another connection's read snapshot;
    ``health().shred_pending``, retried by the next purge)."""

    days: tuple[str, ...]
    reads: int
    images: int
    alerts: int
    unsent_outbox: int
    duration_s: float
    held_days: tuple[str, ...] = ()
    held_unsent: int = 0
    complete: bool = True


@dataclass(frozen=True, slots=True)
class BudgetResult:
    """What one budget enforcement dropped, and whether the store is still over budget."""

    bytes_before: int
    bytes_after: int
    budget_bytes: int
    overview_dropped: int
    crops_dropped: int
    sent_reads_dropped: int
    unsent_reads_dropped: int
    over_budget: bool

    @property
    def dropped_anything(self) -> bool:
        return bool(
            self.overview_dropped
            + self.crops_dropped
            + self.sent_reads_dropped
            + self.unsent_reads_dropped
        )
