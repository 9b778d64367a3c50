"""The daemon does not load what it does not use: steady RSS is within a few MB of its budget
(docs/benchmarks.md), and python-tuf with its signer backends alone costs about 8 MB."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hil.certs import make_test_pki

# Loaded only when their feature is enabled or their command runs.
OPTIONAL = ("tuf", "securesystemslib", "httpx", "ota.worker", "sqlite_utils", "paho",
            "firmware.console.accounts", "PIL")


def test_daemon_imports_leave_optional_subsystems_unloaded() -> None:
    code = (
        "import sys\n"
        "import firmware.cli.main, firmware.config, firmware.app.daemon, firmware.app.wiring\n"
        "from firmware import config\n"
        "config.simulation_defaults()\n"
        f"print(','.join(m for m in {OPTIONAL!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"loaded at daemon start: {out.stdout.strip()}"


#: What `vigil run` must not import before the daemon starts: the other commands' front-ends
#: (provisioning's tomlkit and x509, evaluation's statistics; ~2.7 MB of the daemon's RSS).
FRONT_ENDS = ("tomlkit", "cryptography.x509", "statistics", "firmware.provision",
              "inference.eval_cli", "ota.cli", "getpass")


def test_vigil_run_builds_only_the_daemons_own_commands() -> None:
    code = (
        "import sys\n"
        "import firmware.cli.main as m\n"
        "m.cmd_run = lambda args: 0  # stop where the daemon would start\n"
        "assert m.main(['run']) == 0\n"
        f"print(','.join(x for x in {FRONT_ENDS!r} if x in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"loaded by `vigil run`: {out.stdout.strip()}"


def test_https_uplink_uses_urllib3_not_httpx(tmp_path: Path) -> None:
    """The HTTPS uplink's client: urllib3 (~2 MB less daemon RSS than httpx, which only the
    OTA fetcher still loads; docs/dependencies.md)."""
    pki = make_test_pki(tmp_path / "pki")
    code = (
        "import sys\n"
        "from drivers.clock import SystemClock\n"
        "from firmware.uplink.settings import UplinkSettings\n"
        "from firmware.uplink.transport import HttpsTransport\n"
        f"s = UplinkSettings('https://127.0.0.1:9', {str(pki.ca)!r}, "
        f"{str(pki.client.cert)!r}, {str(pki.client.key)!r}, 'sim-1')\n"
        "HttpsTransport(s, SystemClock()).close()\n"
        "print('urllib3' in sys.modules, 'httpx' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"], out.stdout + out.stderr
