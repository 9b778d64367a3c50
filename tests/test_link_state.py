"""Link state machine: pure transitions and the logging, history-keeping wrapper."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from drivers.clock import FakeClock
from firmware.link.state import (
    LinkSnapshot,
    LinkState,
    LinkStateError,
    LinkStateMachine,
    LinkThresholds,
    ModemReport,
    RequestFailed,
    RequestOk,
    step,
)

TH = LinkThresholds(fail_to_down=3, ok_to_up=2, slow_latency_s=5.0, weak_signal_dbm=-105)
UP = LinkSnapshot(state=LinkState.UP)


def run(snap: LinkSnapshot, *events: object) -> tuple[LinkSnapshot, list[str]]:
    states = []
    for e in events:
        snap, _ = step(snap, e, TH)  # type: ignore[arg-type]
        states.append(snap.state.value)
    return snap, states


def test_boot_is_down_and_successes_bring_it_up() -> None:
    _snap, states = run(LinkSnapshot(), RequestOk(0.2), RequestOk(0.2))
    assert states == ["degraded", "up"]


def test_failures_degrade_then_down() -> None:
    _, states = run(UP, RequestFailed("timeout"), RequestFailed("reset"), RequestFailed("5xx"))
    assert states == ["degraded", "degraded", "down"]


def test_success_resets_failure_count() -> None:
    snap, states = run(UP, RequestFailed("t"), RequestFailed("t"), RequestOk(0.1),
                       RequestFailed("t"), RequestFailed("t"))
    assert states == ["degraded", "degraded", "degraded", "degraded", "degraded"]
    assert snap.consecutive_failures == 2


def test_slow_response_degrades_and_blocks_recovery() -> None:
    _, states = run(UP, RequestOk(9.0), RequestOk(0.1), RequestOk(9.0), RequestOk(0.1),
                    RequestOk(0.1))
    assert states == ["degraded", "degraded", "degraded", "degraded", "up"]


def test_unregistered_modem_is_down_at_once_and_registration_alone_lifts_nothing() -> None:
    _, states = run(UP, ModemReport(False, -80), ModemReport(True, -70), RequestOk(0.1),
                    RequestOk(0.1))
    assert states == ["down", "down", "degraded", "up"]


def test_weak_signal_caps_at_degraded() -> None:
    snap, states = run(UP, ModemReport(True, -110), RequestOk(0.1), RequestOk(0.1),
                       ModemReport(True, -90), RequestOk(0.1), RequestOk(0.1))
    assert states == ["degraded", "degraded", "degraded", "degraded", "up", "up"]
    assert snap.signal_dbm == -90


def test_unknown_signal_is_not_weak() -> None:
    _, states = run(UP, ModemReport(True, None), RequestOk(0.1))
    assert states == ["up", "up"]


def test_transition_reported_only_on_change() -> None:
    snap, tr = step(UP, RequestOk(0.1), TH)
    assert tr is None and snap.state is LinkState.UP
    snap, tr = step(UP, RequestFailed("tls"), TH)
    assert tr is not None and (tr.old, tr.new) == (LinkState.UP, LinkState.DEGRADED)
    assert "tls" in tr.reason


def test_bad_thresholds() -> None:
    with pytest.raises(LinkStateError):
        LinkThresholds(fail_to_down=0)
    with pytest.raises(ValueError):
        LinkThresholds(slow_latency_s=0)


def test_machine_logs_and_keeps_history(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(datetime(2026, 11, 23, tzinfo=UTC))
    m = LinkStateMachine(clock, TH, history=3)
    with caplog.at_level(logging.INFO, logger="firmware.link.state"):
        m.on_success(0.1)
        m.on_success(0.1)
        clock.advance(30)
        for _ in range(3):
            m.on_failure("timeout")
        m.on_modem(False, None)
    assert m.state is LinkState.DOWN
    st = m.status().as_dict()
    assert [t["to"] for t in st["transitions"]] == ["up", "degraded", "down"]  # capped at 3
    assert st["seconds_in_state"] == 0.0
    downs = [r for r in caplog.records if getattr(r, "link_new", None) == "down"]
    assert downs and downs[0].levelno == logging.WARNING
    clock.advance(12)
    assert m.seconds_in_state() == 12
