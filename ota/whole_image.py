"""Whole-image A/B (RAUC) beside Vigil's application slots: the boot verdict follows the gate.

With RAUC the bootloader boots a new root filesystem on trial and counts attempts; something on
the unit must then say ``rauc status mark-good`` (keep it) or ``mark-bad`` (fall back at the
next boot). :class:`RaucHook` lets Vigil's health gate be that judge: after each boot the OTA
worker runs the same gate as for its own slots and hands the verdict here. A bad verdict marks
the booted slot bad only while RAUC still has it on trial (``boot_status`` not ``good``), so a
camera that fails on a long-good image does not flip the unit between images; then it asks for
a reboot into the other slot. The command runner is injected (tests use a fake ``rauc``).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

from ota.errors import OtaError

Runner = Callable[[Sequence[str]], str]


def run_command(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=60,
                              check=True)
    except (OSError, subprocess.SubprocessError) as e:
        raise OtaError(f"{' '.join(argv)} failed: {e}") from e
    return done.stdout


class RaucHook:
    def __init__(self, run: Runner = run_command,
                 reboot: Sequence[str] = ("systemctl", "reboot")) -> None:
        self.run = run
        self.reboot = tuple(reboot)

    def booted_status(self) -> tuple[str, str]:
        """(booted slot name, its boot_status) from ``rauc status --output-format=json``."""
        try:
            doc: dict[str, Any] = json.loads(self.run(["rauc", "status",
                                                       "--output-format=json"]))
            booted = str(doc["booted"])
            for entry in doc.get("slots", []):
                for name, info in entry.items():
                    if info.get("bootname") == booted or name == booted:
                        return name, str(info.get("boot_status", "unknown"))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise OtaError(f"cannot read rauc status: {e}") from e
        return booted, "unknown"

    def verdict(self, failed_why: str | None) -> str:
        """Apply the gate's verdict; returns what was done, in words ("" = nothing)."""
        slot, status = self.booted_status()
        if failed_why is None:
            if status != "good":
                self.run(["rauc", "status", "mark-good", "booted"])
                return f"rauc: marked {slot} good (health gate passed)"
            return ""
        if status == "good":
            return f"rauc: {slot} is already good; not marked bad ({failed_why})"
        self.run(["rauc", "status", "mark-bad", "booted"])
        self.run(self.reboot)
        return f"rauc: marked {slot} bad and rebooting ({failed_why})"
