"""The daemon does not load what it does not use: steady RSS is within a few MB of its budget
(docs/benchmarks.md), and python-tuf with its signer backends alone costs about 8 MB."""

from __future__ import annotations

import subprocess
import sys

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
