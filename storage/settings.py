"""Typed settings of the store. ``firmware.config`` validates TOML into :class:`StoreSettings`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from drivers.config_keys import out_of_range, setting
from storage.errors import InvalidSettings
from storage.roles import DEFAULT_SEARCH_ROLES, search_roles_problem

#: Hard ceiling on retention, even with a signed agency policy. Without one the config validator
#: holds retention to 30 days (``firmware.config.policy.RETENTION_DEFAULT_MAX_DAYS``).
RETENTION_POLICY_MAX_DAYS = 90

INTEGRITY_MODES = ("quick", "full", "off")


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """Store settings (config section ``[store]``); units are in the names.

    ``max_db_mb`` is the budget for the database plus its WAL. When exceeded, the store drops
    overview images, then plate crops, then the oldest already-sent reads, then (only if
    ``drop_unsent_reads_when_full``) the oldest unsent plain reads, until usage is below
    ``budget_low_water`` x budget. Nothing tied to an unsent alert is ever dropped.

    Direct construction is checked against the same declared ranges as the config file, so a
    caller that bypasses ``firmware.config`` still cannot exceed the retention policy.
    """

    path: Path = setting("", type=str, convert=Path,
                         doc="SQLite file; empty = <state_dir>/vigil.db.")
    retention_days: int = setting(30, min=1, max=RETENTION_POLICY_MAX_DAYS,
                                  doc="Reads and images older than this are crypto-shredded. "
                                  "Above 30 only with a signed agency policy file "
                                  "(agency-policy.json beside the config) allowing it.")
    max_db_mb: float = setting(4096.0, min=1.0, max=1048576.0,
                               doc="Size budget of the database plus WAL.")
    min_free_mb: float = setting(64.0, min=0.0, max=1048576.0,
                                 doc="Free space on the state filesystem below which the unit "
                                 "is degraded (disk_low), from start on: writes are about to "
                                 "fail. 0 = never.")
    purge_interval_s: float = setting(3600.0, min=60.0, max=86400.0)
    checkpoint_every: int = setting(1000, min=1, max=100000,
                                    doc="Audit entries between signed checkpoints.")
    integrity_check: str = setting("quick", choices=INTEGRITY_MODES,
                                   doc="SQLite integrity check at start.")
    budget_low_water: float = setting(0.9, min=0.5, max=0.99)
    drop_unsent_reads_when_full: bool = setting(True)
    search_roles: tuple[str, ...] = setting(DEFAULT_SEARCH_ROLES,
                                            doc="Roles allowed read data (plate search, reads "
                                            "by id): investigator and/or admin, never others.")
    counters_keep_days: int = setting(400, min=1, max=3660)
    group_commit_max: int = setting(512, min=1, max=10000)
    page_size: int = setting(8192, choices=(4096, 8192, 16384, 32768, 65536))

    def __post_init__(self) -> None:
        problems = [p + " (policy maximum)" if p.startswith("retention_days=") else p
                    for p in out_of_range(self)]
        if self.counters_keep_days < self.retention_days:
            problems.append(
                f"counters_keep_days={self.counters_keep_days} is shorter than retention_days"
            )
        roles_problem = search_roles_problem(tuple(self.search_roles))
        if roles_problem is not None:
            problems.append(f"search_roles={list(self.search_roles)!r}: {roles_problem}")
        if problems:
            raise InvalidSettings("invalid store settings: " + "; ".join(problems))
