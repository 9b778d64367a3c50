"""Whether to take an offered update now: a pure function of signed fields and unit facts.

The fields come from the target's *signed* custom metadata (``custom.vigil`` in the targets
role), so a mirror cannot widen a staged rollout, move a maintenance window, or turn a
downgrade into an allowed one. No I/O, no clock reads: the caller passes ``now``.

``custom.vigil`` fields: ``version`` (dotted integers), ``kind`` (``app`` or ``model``),
``rollout_percent`` (0..100, default 100), ``window_utc`` (``"HH:MM-HH:MM"``, may wrap
midnight; absent = any time), ``allow_downgrade`` (the vendor's signed exception to the
version floor, default false), ``min_version`` (the oldest installed version this target may be
applied to, e.g. because of a storage migration).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from enum import StrEnum
from typing import Any

from ota import versions
from ota.errors import RepositoryRefused

KINDS = ("app", "model")


@dataclass(frozen=True)
class Offer:
    """One installable target as the signed metadata describes it."""

    target: str
    version: str
    kind: str
    length: int
    sha256: str
    rollout_percent: float = 100.0
    window_utc: tuple[time, time] | None = None
    allow_downgrade: bool = False
    min_version: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict, compare=False)  # all signed fields

    @classmethod
    def from_target(cls, target: str, length: int, hashes: Mapping[str, str],
                    custom: Mapping[str, Any] | None) -> Offer:
        v = (custom or {}).get("vigil")
        if not isinstance(v, Mapping):
            raise RepositoryRefused(f"target {target} carries no signed 'vigil' custom fields")
        version = str(v.get("version", ""))
        versions.parse(version)
        kind = v.get("kind")
        if kind not in KINDS:
            raise RepositoryRefused(f"target {target}: kind {kind!r} not in {KINDS}")
        pct = float(v.get("rollout_percent", 100.0))
        if not 0.0 <= pct <= 100.0:
            raise RepositoryRefused(f"target {target}: rollout_percent {pct} outside 0..100")
        window = parse_window(v["window_utc"]) if v.get("window_utc") else None
        min_version = v.get("min_version")
        if min_version is not None:
            versions.parse(str(min_version))
        if "sha256" not in hashes:
            raise RepositoryRefused(f"target {target} has no sha256 hash")
        return cls(target, version, kind, int(length), hashes["sha256"], pct, window,
                   bool(v.get("allow_downgrade", False)),
                   None if min_version is None else str(min_version), dict(v))


def parse_window(text: str) -> tuple[time, time]:
    try:
        a, b = text.split("-")
        return time.fromisoformat(a.strip()), time.fromisoformat(b.strip())
    except ValueError as e:
        raise RepositoryRefused(f"window_utc {text!r} is not 'HH:MM-HH:MM'") from e


def in_window(window: tuple[time, time] | None, now_utc: datetime) -> bool:
    if window is None:
        return True
    start, end = window
    t = now_utc.time().replace(tzinfo=None)
    return start <= t < end if start <= end else (t >= start or t < end)


def rollout_bucket(unit_id: str, target: str, version: str) -> float:
    """A stable 0..100 position of this unit in one release's rollout.

    Salted with the release so the same units are not always the first ones.
    """
    digest = hashlib.sha256(f"{unit_id}\0{target}\0{version}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100.0


class Action(StrEnum):
    INSTALL = "install"
    SKIP = "skip"  # nothing to do (already installed)
    DEFER = "defer"  # allowed later (rollout, window, alert)
    REFUSE = "refuse"  # never (downgrade, wrong base version)


@dataclass(frozen=True)
class UnitFacts:
    unit_id: str
    installed_version: str
    version_floor: str
    now_utc: datetime
    alert_pending: bool = False


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str


def decide(offer: Offer, unit: UnitFacts) -> Decision:
    """The one place that says install / skip / defer / refuse, and why."""
    if offer.version == unit.installed_version or (
            versions.parse(offer.version) == versions.parse(unit.installed_version)):
        return Decision(Action.SKIP, f"{offer.version} is installed")
    older = not versions.newer(offer.version, unit.installed_version)
    below_floor = not versions.at_least(offer.version, unit.version_floor)
    if (older or below_floor) and not offer.allow_downgrade:
        return Decision(Action.REFUSE,
                        f"downgrade to {offer.version} refused (installed "
                        f"{unit.installed_version}, floor {unit.version_floor}, no signed "
                        "downgrade exception)")
    if offer.min_version and not versions.at_least(unit.installed_version, offer.min_version):
        return Decision(Action.REFUSE, f"{offer.version} needs {offer.min_version} or later "
                        f"installed first (have {unit.installed_version})")
    bucket = rollout_bucket(unit.unit_id, offer.target, offer.version)
    if bucket >= offer.rollout_percent:
        return Decision(Action.DEFER, f"not in the {offer.rollout_percent:g} % rollout yet "
                        f"(bucket {bucket:.1f})")
    if not in_window(offer.window_utc, unit.now_utc):
        return Decision(Action.DEFER, "outside the maintenance window")
    if unit.alert_pending:
        return Decision(Action.DEFER, "an alert is waiting to be sent")
    return Decision(Action.INSTALL, f"{unit.installed_version} -> {offer.version}")
