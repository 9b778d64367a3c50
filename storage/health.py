"""The store's health: what its parts flag while running, and the record ``Store.health()``
returns to the daemon and the status socket."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class CorruptionRecovery:
    """A store file that failed its integrity check at open: where it was moved, and why."""

    moved_to: str
    reason: str


@dataclass(frozen=True, slots=True)
class SalvageReport:
    """What a corruption recovery carried from the damaged file into the new one, and what it
    could not. ``lost_reads`` are reads known to have existed (an outbox item, an alert, a row
    that failed to authenticate) but not carried over; ``unreadable_ranges`` counts, per table,
    the row ranges SQLite could not read (rows there are lost without a trace to count)."""

    reads: int
    unsent_reads: int
    images: int
    alerts: int
    day_keys: int
    lost_reads: int
    lost_unsent_reads: int
    lost_images: int
    lost_alerts: int
    lost_day_keys: int
    unreadable_ranges: Mapping[str, int]
    header_rebuilt: bool
    duration_s: float
    tampered_rows: int = 0  # outbox rows whose MAC failed: not carried, their items re-queued

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["unreadable_ranges"] = dict(self.unreadable_ranges)
        out["duration_s"] = round(self.duration_s, 3)
        return out


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """One snapshot of the store's health.

    ``degraded``: the store keeps working, but not as configured: it is over its disk budget
    (only data tied to unsent alerts or reads is left to drop) or it was recreated empty after
    its file failed the integrity check (``salvage`` says what was carried over and what was
    lost), or its last write failed (``write_failing``: the error; ``disk_full`` when the disk
    stayed full after dropping what may be dropped), cleared by the next write that commits.
    ``clock_trusted`` is the daemon's judgement of the wall clock (synchronised, no recent jump)
    as the store last asked it; it does not degrade the store, the daemon counts it among the
    unit's reasons. ``purge_blocked`` says why retention is waiting (an untrusted clock).
    ``dead_letter_items`` counts outbox items the agency rejected for good.
    ``damaged_day_keys``: days whose wrapped key failed authentication (their
    ``set_aside_reads`` cannot be opened; degraded until the day expires). ``mac_mismatches``:
    outbox or alert rows whose MAC failed (refused and set aside). ``shred_pending``: a purge
    deleted keys but the WAL checkpoint that removes their last copies has not completed yet.
    ``key_source``: where the KEK came from (``file:...``, ``tpm:...``). ``ok`` is also
    False after a write or maintenance error and once an outbox item failed authentication. The
    live figures (``used_bytes`` to ``live_days``) are None once the store is closed.
    """

    schema_version: int
    plaintext: bool
    recovered_from_corruption: CorruptionRecovery | None
    over_budget: bool
    last_purge_at: datetime | None
    last_budget_drop_at: datetime | None
    last_error: str | None
    undecryptable_items: int
    used_bytes: int | None = None
    budget_bytes: int | None = None
    outbox: Mapping[str, int] | None = None
    dead_letter_items: int | None = None  # rejected by the agency for good, kept (outbox.py)
    live_days: tuple[str, ...] | None = None
    purge_blocked: str | None = None
    salvage: SalvageReport | None = None
    write_failing: str | None = None
    disk_full: bool = False
    clock_trusted: bool = True
    damaged_day_keys: tuple[str, ...] = ()
    set_aside_reads: int = 0
    mac_mismatches: int = 0
    shred_pending: str | None = None
    key_source: str = ""

    @property
    def degraded(self) -> bool:
        return (self.over_budget or self.recovered_from_corruption is not None
                or self.write_failing is not None or self.disk_full
                or bool(self.damaged_day_keys))

    @property
    def ok(self) -> bool:
        return (not self.degraded and self.last_error is None and not self.undecryptable_items
                and not self.mac_mismatches and self.shred_pending is None)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (the ``store`` object of ``vigil status``)."""
        rec = self.recovered_from_corruption
        out: dict[str, Any] = {
            "recovered_from_corruption": None
            if rec is None
            else {"moved_to": rec.moved_to, "reason": rec.reason},
            "over_budget": self.over_budget,
            "last_purge_at": _iso(self.last_purge_at),
            "last_budget_drop_at": _iso(self.last_budget_drop_at),
            "last_error": self.last_error,
            "undecryptable_items": self.undecryptable_items,
            "purge_blocked": self.purge_blocked,
            "salvage": None if self.salvage is None else self.salvage.as_dict(),
            "write_failing": self.write_failing,
            "disk_full": self.disk_full,
            "clock_trusted": self.clock_trusted,
            "damaged_day_keys": list(self.damaged_day_keys),
            "set_aside_reads": self.set_aside_reads,
            "mac_mismatches": self.mac_mismatches,
            "shred_pending": self.shred_pending,
            "key_source": self.key_source,
            "schema_version": self.schema_version,
            "plaintext": self.plaintext,
        }
        if self.live_days is not None:
            out.update(
                used_bytes=self.used_bytes,
                budget_bytes=self.budget_bytes,
                outbox=dict(self.outbox or {}),
                dead_letter_items=self.dead_letter_items,
                live_days=list(self.live_days),
            )
        out.update(ok=self.ok, degraded=self.degraded)
        return out


@dataclass(slots=True)
class HealthFlags:
    """What the store's parts report as they run. Each update is one attribute assignment (or an
    increment under the database lock), so readers never see a half-written field."""

    recovered_from_corruption: CorruptionRecovery | None = None
    over_budget: bool = False
    last_purge_at: datetime | None = None
    last_budget_drop_at: datetime | None = None
    last_error: str | None = None
    undecryptable_items: int = 0
    purge_blocked: str | None = None
    salvage: SalvageReport | None = None
    write_failing: str | None = None
    disk_full: bool = False
    damaged_day_keys: tuple[str, ...] = ()  # wrapped keys that failed authentication
    set_aside_reads: int = 0  # reads locked by them, counted when found
    mac_mismatches: int = 0  # outbox/alert rows whose MAC failed (storage.rowmac)
    shred_pending: str | None = None  # a purge whose WAL checkpoint did not complete yet

    def snapshot(
        self, *, schema_version: int, plaintext: bool, clock_trusted: bool, **live: Any
    ) -> StoreHealth:
        return StoreHealth(
            schema_version=schema_version,
            plaintext=plaintext,
            recovered_from_corruption=self.recovered_from_corruption,
            over_budget=self.over_budget,
            last_purge_at=self.last_purge_at,
            last_budget_drop_at=self.last_budget_drop_at,
            last_error=self.last_error,
            undecryptable_items=self.undecryptable_items,
            purge_blocked=self.purge_blocked,
            salvage=self.salvage,
            write_failing=self.write_failing,
            disk_full=self.disk_full,
            clock_trusted=clock_trusted,
            damaged_day_keys=self.damaged_day_keys,
            set_aside_reads=self.set_aside_reads,
            mac_mismatches=self.mac_mismatches,
            shred_pending=self.shred_pending,
            **live,
        )


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.isoformat()
