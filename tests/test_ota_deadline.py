"""The trial deadline kept from outside the version on trial: the pure ``overdue`` rule, the
``vigil ota overdue`` condition, and the timer units (the scenario: hil/test_ota_hang.py)."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ota.cli import main as ota_main
from ota.slotfs import SlotFS
from ota.slots import Boot, Phase, SlotState, overdue, step

SYSTEMD = Path(__file__).resolve().parents[1] / "systemd"
T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def _trial(started: datetime, deadline_s: float = 300.0) -> SlotState:
    return SlotState(active="b", committed="a", phase=Phase.TRIAL, version_a="1.0.0",
                     version_b="1.1.0", target_version="1.1.0",
                     trial_started_utc=started.isoformat(), trial_deadline_s=deadline_s)


def test_overdue_only_past_the_deadline_and_its_grace():
    s = _trial(T0)
    assert overdue(s, T0 + timedelta(seconds=300)) is None
    assert overdue(s, T0 + timedelta(seconds=301)) == "health gate not passed within 300 s"
    assert overdue(s, T0 + timedelta(seconds=320), grace_s=30) is None
    assert overdue(s, T0 + timedelta(seconds=331), grace_s=30) is not None
    assert overdue(SlotState(), T0 + timedelta(days=9)) is None  # not on trial
    # the boot check rolls back on the same rule
    new, _ = step(s, Boot(T0 + timedelta(seconds=301)))
    assert new.phase is Phase.IDLE and new.active == "a" and new.bad_version == "1.1.0"


def test_overdue_command_is_the_timers_condition(tmp_path, capsys):
    fs = SlotFS(tmp_path / "ota")
    fs.init("1.0.0")
    root = str(fs.root)
    assert ota_main(["ota", "overdue", "--root", root]) == 1  # idle: nothing to do
    fs.save(_trial(datetime.now(UTC) - timedelta(seconds=100), deadline_s=60))
    assert ota_main(["ota", "overdue", "--root", root, "--grace-s", "60"]) == 1
    assert ota_main(["ota", "overdue", "--root", root, "--grace-s", "30"]) == 0
    assert "trial of 1.1.0" in capsys.readouterr().err
    before = (fs.root / "state.json").read_bytes()
    assert ota_main(["ota", "overdue", "--root", root]) == 0
    assert (fs.root / "state.json").read_bytes() == before  # it only reads


def test_timer_units():
    svc = (SYSTEMD / "vigil-ota-deadline.service").read_text()
    assert "ExecCondition=" in svc and "ota overdue" in svc and "/committed/app" in svc
    assert "ExecStart=+/bin/systemctl --no-block restart vigil.service" in svc
    assert "User=vigil" in svc
    timer = (SYSTEMD / "vigil-ota-deadline.timer").read_text()
    assert "OnUnitActiveSec=60s" in timer and "WantedBy=timers.target" in timer


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_timer_units_pass_systemd_analyze_verify(tmp_path):
    for name in ("vigil-ota-deadline.service", "vigil-ota-deadline.timer", "vigil.service"):
        text = (SYSTEMD / name).read_text().replace("/opt/vigil/venv/bin/python", "/bin/true")
        (tmp_path / name).write_text(text.replace("/opt/vigil/venv/bin/vigil", "/bin/true"))
    proc = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "vigil-ota-deadline.timer"),
                           str(tmp_path / "vigil-ota-deadline.service")],
                          capture_output=True, text=True, timeout=60)
    problems = [ln for ln in proc.stderr.splitlines() if "vigil-ota" in ln]
    assert proc.returncode == 0 and not problems, proc.stderr
