"""Which signed offer a unit takes, when: floor, downgrade exception, rollout, window, alerts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ota.errors import RepositoryRefused
from ota.policy import Action, Offer, UnitFacts, decide, rollout_bucket

NIGHT = datetime(2026, 12, 1, 2, 30, tzinfo=UTC)
NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _offer(version: str, **vigil: object) -> Offer:
    return Offer.from_target("stable/app.vbundle", 100, {"sha256": "ab" * 32},
                             {"vigil": {"version": version, "kind": "app", **vigil}})


def _unit(installed: str = "1.2.0", floor: str = "1.2.0", now: datetime = NIGHT,
          unit_id: str = "cam-1", alert: bool = False) -> UnitFacts:
    return UnitFacts(unit_id, installed, floor, now, alert)


def test_newer_installs_same_skips_older_is_refused():
    assert decide(_offer("1.3.0"), _unit()).action is Action.INSTALL
    assert decide(_offer("1.2.0"), _unit()).action is Action.SKIP
    d = decide(_offer("1.1.9"), _unit())
    assert d.action is Action.REFUSE and "downgrade" in d.reason


def test_signed_downgrade_exception_passes_the_floor():
    assert decide(_offer("1.1.0", allow_downgrade=True), _unit()).action is Action.INSTALL
    # the floor also binds a version newer than the one installed (after a rollback)
    assert decide(_offer("1.2.5"), _unit("1.2.0", floor="1.3.0")).action is Action.REFUSE


def test_rollout_percentage_is_stable_per_unit_and_roughly_fair():
    units = [f"cam-{i}" for i in range(2000)]
    picked = [u for u in units
              if decide(_offer("1.3.0", rollout_percent=10), _unit(unit_id=u)).action
              is Action.INSTALL]
    assert 140 <= len(picked) <= 260
    again = [u for u in units
             if decide(_offer("1.3.0", rollout_percent=10), _unit(unit_id=u)).action
             is Action.INSTALL]
    assert picked == again
    wider = {u for u in units
             if decide(_offer("1.3.0", rollout_percent=50), _unit(unit_id=u)).action
             is Action.INSTALL}
    assert set(picked) <= wider, "widening a rollout never drops a unit already in it"
    assert rollout_bucket("cam-1", "t", "1.3.0") == rollout_bucket("cam-1", "t", "1.3.0")


def test_maintenance_window_wraps_midnight():
    o = _offer("1.3.0", window_utc="23:00-04:00")
    assert decide(o, _unit(now=NIGHT)).action is Action.INSTALL
    d = decide(o, _unit(now=NOON))
    assert d.action is Action.DEFER and "window" in d.reason


def test_pending_alert_defers():
    d = decide(_offer("1.3.0"), _unit(alert=True))
    assert d.action is Action.DEFER and "alert" in d.reason


def test_min_version_gate():
    d = decide(_offer("2.0.0", min_version="1.5.0"), _unit())
    assert d.action is Action.REFUSE and "1.5.0" in d.reason


@pytest.mark.parametrize("vigil", [{}, {"version": "1.x", "kind": "app"},
                                   {"version": "1.0", "kind": "firmware"},
                                   {"version": "1.0", "kind": "app", "rollout_percent": 101},
                                   {"version": "1.0", "kind": "app", "window_utc": "late"}])
def test_malformed_signed_fields_are_refused(vigil):
    with pytest.raises(RepositoryRefused):
        Offer.from_target("t", 1, {"sha256": "00"}, {"vigil": vigil} if vigil else {})
