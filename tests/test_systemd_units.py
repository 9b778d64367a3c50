"""The unit file keeps its contract with the daemon and passes `systemd-analyze verify`."""

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "vigil.service"


def _parse() -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        assert current is not None
        current.setdefault(key, []).append(value)
    return sections


def test_notify_watchdog_and_restart_contract():
    svc = _parse()["Service"]
    assert svc["Type"] == ["notify"]
    assert svc["WatchdogSec"] and svc["Restart"] == ["on-failure"]
    assert svc["TimeoutStopSec"] == ["5s"]
    assert svc["RestartPreventExitStatus"] == ["78"]  # config errors are not retried
    unit = _parse()["Unit"]
    assert "StartLimitBurst" in unit and "StartLimitIntervalSec" in unit


def test_least_privilege():
    svc = _parse()["Service"]
    for key, value in {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes", "DevicePolicy": "closed", "CapabilityBoundingSet": "",
        "UMask": "0077",
    }.items():
        assert svc[key] == [value], key
    assert svc["User"] == ["vigil"]
    assert svc["StateDirectory"] == ["vigil"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path):
    # verify checks that ExecStart exists; point it at a binary every machine has.
    text = UNIT.read_text().replace("/opt/vigil/venv/bin/vigil", "/bin/true")
    copy = tmp_path / "vigil.service"
    copy.write_text(text)
    proc = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True,
                          text=True, timeout=60)
    problems = [ln for ln in proc.stderr.splitlines() if "vigil.service" in ln]
    assert proc.returncode == 0 and not problems, proc.stderr


def test_configparser_can_read_unit():
    # A syntax smoke test that does not depend on systemd being installed.
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment]
    cp.read_string(UNIT.read_text())
    assert cp.has_section("Install")
