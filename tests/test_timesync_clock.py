"""Clock judgement: sync probe fallbacks, jump detection, read flags."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta

from drivers.clock import FakeClock
from firmware.link.timesync import (
    JumpDetector,
    SyncProbe,
    TimeSync,
    probe_sync_status,
)

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _run(stdout: str, rc: int = 0):  # type: ignore[no-untyped-def]
    def run(*a, **k):  # type: ignore[no-untyped-def]
        return subprocess.CompletedProcess(a[0], rc, stdout=stdout, stderr="")
    return run


def _missing(*a, **k):  # type: ignore[no-untyped-def]
    raise FileNotFoundError("timedatectl")


def test_probe_prefers_timedatectl_then_adjtimex_then_unknown() -> None:
    assert probe_sync_status(_run("yes\n"), lambda: 5) == SyncProbe(True, "timedatectl")
    assert probe_sync_status(_run("no\n"), lambda: 0).synchronized is False
    assert probe_sync_status(_missing, lambda: 0) == SyncProbe(True, "adjtimex", "state 0")
    assert probe_sync_status(_missing, lambda: 5).synchronized is False
    assert probe_sync_status(_run("", rc=1), lambda: None).synchronized is None

    def timeout(*a, **k):  # type: ignore[no-untyped-def]
        raise subprocess.TimeoutExpired("timedatectl", 3)
    assert probe_sync_status(timeout, lambda: None).source == "none"


def test_probe_on_this_machine_never_raises() -> None:
    p = probe_sync_status()
    assert p.source in ("timedatectl", "adjtimex", "none")


def test_jump_detector() -> None:
    d = JumpDetector(threshold_s=2.0)
    assert d.feed(0.0, T0) is None
    assert d.feed(10.0, T0 + timedelta(seconds=10.5)) is None  # drift, not a jump
    j = d.feed(20.0, T0 + timedelta(hours=1, seconds=20))
    assert j is not None and abs(j.delta_s - 3599.5) < 1e-6
    back = d.feed(30.0, T0 + timedelta(seconds=30))
    assert back is not None and back.delta_s < -3000


def test_flags_follow_sync_jumps_and_reference() -> None:
    clock = FakeClock(T0)
    synced = SyncProbe(True, "timedatectl")
    state = {"p": SyncProbe(False, "timedatectl")}
    ts = TimeSync(clock, probe=lambda: state["p"], probe_interval_s=10, jump_flag_window_s=60)
    ts.step()
    assert ts.read_flags() == ("clock_unsynced",) and not ts.is_synced()
    state["p"] = synced
    clock.advance(10)
    ts.step()
    assert ts.read_flags() == () and ts.is_synced()
    clock.step_wall(timedelta(minutes=-5))  # NTP steps the clock back
    clock.advance(1)
    ts.step()
    assert ts.read_flags() == ("clock_jumped",)
    assert ts.report().time.jumps == 1
    assert list(ts.report().as_dict()) == ["synced", "source", "plausible", "jumps", "last_jump_s",
                                      "reference_offset_s", "flags"]  # pinned: `vigil status`
    clock.advance(61)
    ts.step()
    assert ts.read_flags() == ()
    ts.observe_reference(clock.utcnow() - timedelta(seconds=7))  # GPS says we are 7 s fast
    assert ts.read_flags() == ("clock_offset",) and not ts.is_synced()
    clock.advance(3601)
    assert ts.read_flags() == ()


def test_implausible_date_is_unsynced_even_if_ntp_says_yes() -> None:
    clock = FakeClock(datetime(1970, 1, 1, 0, 1, tzinfo=UTC))
    ts = TimeSync(clock, probe=lambda: SyncProbe(True, "timedatectl"))
    ts.step()
    assert "clock_unsynced" in ts.read_flags()
    assert ts.status().plausible is False
