"""The A/B slot state machine: ``step(state, event) -> (state, actions)``, no I/O.

Two application slots, ``a`` and ``b``. ``active`` is the slot the unit runs (the ``current``
link), ``committed`` the last one that passed the health gate (the ``committed`` link, whose
code also runs the boot check, so a broken new version cannot stop its own rollback)::

    idle --StageStart--> staging --StageDone--> staged --Switch--> trial --HealthPassed--> idle
      ^                     |  (StageFailed, Boot)        |  (Abort)  |                (commit)
      +---------------------+------------------------------+           |
      +------------- HealthFailed / Boot past the deadline or the boot limit (rollback) ------+

The running slot is never written: staging always goes to the other one, and only when idle.
The version floor rises at each commit and never falls; the state records it so a stolen but
validly signed old release cannot come back (only a signed downgrade exception gets past it,
see :mod:`ota.policy`). Illegal events raise :class:`~ota.errors.SlotTransitionError`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from ota import versions
from ota.errors import SlotTransitionError

SLOTS = ("a", "b")


def other(slot: str) -> str:
    return "b" if slot == "a" else "a"


class Phase(StrEnum):
    IDLE = "idle"
    STAGING = "staging"
    STAGED = "staged"
    TRIAL = "trial"


@dataclass(frozen=True)
class SlotState:
    active: str = "a"
    committed: str = "a"
    phase: Phase = Phase.IDLE
    version_a: str | None = None
    version_b: str | None = None
    floor: str = "0"
    target_version: str | None = None
    trial_started_utc: str | None = None
    trial_boots: int = 0
    trial_max_boots: int = 3
    trial_deadline_s: float = 300.0
    uplink_was_ok: bool = False
    bad_version: str | None = None  # the last version that was rolled back (not retried)
    last: str = ""  # the last outcome, in words

    def version_of(self, slot: str) -> str | None:
        return self.version_a if slot == "a" else self.version_b

    @property
    def inactive(self) -> str:
        return other(self.active)

    @property
    def running_version(self) -> str | None:
        return self.version_of(self.active)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["phase"] = self.phase.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SlotState:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["phase"] = Phase(kw.get("phase", "idle"))
        state = cls(**kw)
        if state.active not in SLOTS or state.committed not in SLOTS:
            raise SlotTransitionError(f"slot state names unknown slots: {d}")
        return state


def _with_version(s: SlotState, slot: str, version: str | None) -> SlotState:
    if slot == "a":
        return dataclasses.replace(s, version_a=version)
    return dataclasses.replace(s, version_b=version)


# ---- events ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class StageStart:
    version: str


@dataclass(frozen=True)
class StageDone:
    version: str


@dataclass(frozen=True)
class StageFailed:
    reason: str


@dataclass(frozen=True)
class Abort:
    reason: str


@dataclass(frozen=True)
class Switch:
    now_utc: datetime
    uplink_ok: bool
    deadline_s: float = 300.0
    max_boots: int = 3


@dataclass(frozen=True)
class Boot:
    """The service is (re)starting: counted while on trial (crash loops end in a rollback)."""

    now_utc: datetime


@dataclass(frozen=True)
class HealthPassed:
    detail: str = ""


@dataclass(frozen=True)
class HealthFailed:
    reason: str


Event = StageStart | StageDone | StageFailed | Abort | Switch | Boot | HealthPassed | HealthFailed


# ---- actions (carried out by ota.slotfs and the worker, in this order) ----------------------
@dataclass(frozen=True)
class Discard:
    slot: str


@dataclass(frozen=True)
class PointCurrent:
    slot: str


@dataclass(frozen=True)
class PointCommitted:
    slot: str


@dataclass(frozen=True)
class Restart:
    reason: str


@dataclass(frozen=True)
class Report:
    step: str
    detail: str


Action = Discard | PointCurrent | PointCommitted | Restart | Report


def _illegal(state: SlotState, event: Event) -> SlotTransitionError:
    return SlotTransitionError(f"{type(event).__name__} is not allowed while {state.phase}")


def _rollback(s: SlotState, why: str) -> tuple[SlotState, tuple[Action, ...]]:
    failed = s.target_version
    new = dataclasses.replace(s, active=s.committed, phase=Phase.IDLE, target_version=None,
                              trial_started_utc=None, trial_boots=0, bad_version=failed,
                              last=f"rolled back from {failed}: {why}")
    return new, (PointCurrent(s.committed), Report("rolled_back", new.last),
                 Restart(f"rolled back: {why}"))


def overdue(s: SlotState, now_utc: datetime, grace_s: float = 0.0) -> str | None:
    """Why a trial must end now (``grace_s`` past its deadline, in UTC from the switch), or
    None: not on trial, or still in time. The boot check rolls back on it; the deadline timer
    (``vigil ota overdue``) restarts a service whose version never reached its own verdict."""
    if s.phase is not Phase.TRIAL or s.trial_started_utc is None:
        return None
    started = datetime.fromisoformat(s.trial_started_utc)
    if (now_utc - started).total_seconds() > s.trial_deadline_s + grace_s:
        return f"health gate not passed within {s.trial_deadline_s:g} s"
    return None


def step(s: SlotState, event: Event) -> tuple[SlotState, tuple[Action, ...]]:
    """The next state and what must be done to make the filesystem agree with it."""
    match event:
        case StageStart(version=v):
            if s.phase not in (Phase.IDLE, Phase.STAGED):
                raise _illegal(s, event)
            versions.parse(v)
            new = _with_version(dataclasses.replace(s, phase=Phase.STAGING, target_version=v,
                                                    last=f"staging {v}"), s.inactive, None)
            return new, (Discard(s.inactive), Report("staging", v))
        case StageDone(version=v):
            if s.phase is not Phase.STAGING or v != s.target_version:
                raise _illegal(s, event)
            new = _with_version(dataclasses.replace(s, phase=Phase.STAGED,
                                                    last=f"staged {v}"), s.inactive, v)
            return new, (Report("staged", v),)
        case StageFailed(reason=why) | Abort(reason=why):
            if s.phase not in (Phase.STAGING, Phase.STAGED):
                raise _illegal(s, event)
            new = _with_version(dataclasses.replace(s, phase=Phase.IDLE, target_version=None,
                                                    last=why), s.inactive, None)
            return new, (Discard(s.inactive), Report("stage_failed", why))
        case Switch():
            if s.phase is not Phase.STAGED:
                raise _illegal(s, event)
            new = dataclasses.replace(
                s, active=s.inactive, phase=Phase.TRIAL, trial_boots=0,
                trial_started_utc=event.now_utc.isoformat(), uplink_was_ok=event.uplink_ok,
                trial_deadline_s=event.deadline_s, trial_max_boots=event.max_boots,
                last=f"trial of {s.target_version}")
            return new, (PointCurrent(s.inactive), Report("trial", str(s.target_version)),
                         Restart(f"switch to {s.target_version}"))
        case Boot(now_utc=now):
            if s.phase is Phase.STAGING:  # killed while staging: the half slot is worthless
                new = _with_version(dataclasses.replace(
                    s, phase=Phase.IDLE, target_version=None, last="staging interrupted"),
                    s.inactive, None)
                return new, (Discard(s.inactive), Report("stage_failed", new.last))
            if s.phase is not Phase.TRIAL:
                return s, ()
            boots = s.trial_boots + 1
            if boots > s.trial_max_boots:
                return _rollback(s, f"{boots - 1} starts without passing the health gate "
                                    "(crash loop)")
            late = overdue(s, now)
            if late is not None:
                return _rollback(s, late)
            return dataclasses.replace(s, trial_boots=boots), ()
        case HealthPassed(detail=detail):
            if s.phase is not Phase.TRIAL:
                raise _illegal(s, event)
            v = str(s.target_version)
            new = dataclasses.replace(s, committed=s.active, phase=Phase.IDLE,
                                      target_version=None, trial_started_utc=None,
                                      trial_boots=0, floor=versions.highest(s.floor, v),
                                      last=f"committed {v}" + (f" ({detail})" if detail else ""))
            return new, (PointCommitted(s.active), Report("committed", new.last))
        case HealthFailed(reason=why):
            if s.phase is not Phase.TRIAL:
                raise _illegal(s, event)
            return _rollback(s, why)
    raise SlotTransitionError(f"unknown event {event!r}")
