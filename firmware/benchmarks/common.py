"""What every benchmark reports besides its figures: the machine and the version."""

from __future__ import annotations

import contextlib
import os
import platform
from datetime import UTC, datetime
from typing import Any


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("model name", "Model")):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = None
    with contextlib.suppress(ValueError, OSError):
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "mem_gib": mem_gib,
        "python": platform.python_version(),
    }


def envelope(area: str, figures: dict[str, Any]) -> dict[str, Any]:
    from firmware.version import VERSION

    return {"area": area, **figures, "machine": machine(), "version": VERSION,
            "date": datetime.now(UTC).date().isoformat()}
