"""Typed settings of the store. ``firmware.config`` validates TOML into :class:`StoreSettings`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from storage.errors import InvalidSettings

#: Legal ceiling on retention. Config may shorten retention, never lengthen it past this.
RETENTION_POLICY_MAX_DAYS = 90

INTEGRITY_MODES = ("quick", "full", "off")


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """Store settings; units are in the names.

    ``max_db_mb`` is the budget for the database plus its WAL. When exceeded, the store drops
    overview images, then plate crops, then the oldest already-sent reads, then (only if
    ``drop_unsent_reads_when_full``) the oldest unsent plain reads, until usage is below
    ``budget_low_water`` x budget. Nothing tied to an unsent alert is ever dropped.
    """

    path: Path = Path("/var/lib/vigil/store.db")
    retention_days: int = 30
    max_db_mb: float = 4096.0
    purge_interval_s: float = 3600.0
    checkpoint_every: int = 1000
    integrity_check: str = "quick"
    budget_low_water: float = 0.9
    drop_unsent_reads_when_full: bool = True
    search_roles: tuple[str, ...] = ("operator", "investigator", "technician")
    counters_keep_days: int = 400
    group_commit_max: int = 512
    page_size: int = 8192

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not 1 <= self.retention_days <= RETENTION_POLICY_MAX_DAYS:
            problems.append(
                f"retention_days={self.retention_days} outside 1..{RETENTION_POLICY_MAX_DAYS}"
                " (policy maximum)"
            )
        if not 1.0 <= self.max_db_mb <= 1_048_576.0:
            problems.append(f"max_db_mb={self.max_db_mb} outside 1..1048576")
        if not 60.0 <= self.purge_interval_s <= 86_400.0:
            problems.append(f"purge_interval_s={self.purge_interval_s} outside 60..86400")
        if not 1 <= self.checkpoint_every <= 100_000:
            problems.append(f"checkpoint_every={self.checkpoint_every} outside 1..100000")
        if self.integrity_check not in INTEGRITY_MODES:
            problems.append(f"integrity_check={self.integrity_check!r} not in {INTEGRITY_MODES}")
        if not 0.5 <= self.budget_low_water < 1.0:
            problems.append(f"budget_low_water={self.budget_low_water} outside 0.5..<1.0")
        if not self.retention_days <= self.counters_keep_days <= 3660:
            problems.append(
                f"counters_keep_days={self.counters_keep_days} outside retention_days..3660"
            )
        if not 1 <= self.group_commit_max <= 10_000:
            problems.append(f"group_commit_max={self.group_commit_max} outside 1..10000")
        if self.page_size not in (4096, 8192, 16384, 32768, 65536):
            problems.append(f"page_size={self.page_size} not a power of two in 4096..65536")
        if problems:
            raise InvalidSettings("invalid store settings: " + "; ".join(problems))
