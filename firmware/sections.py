"""Every configuration section and key, declared once.

Sections whose settings belong to another package build that package's frozen settings class
directly, so there is no second copy of the defaults to drift.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.config import Key, Section
from firmware.supervisor import SupervisorSettings


@dataclass(frozen=True)
class UnitSettings:
    camera_id: str = "sim-1"
    state_dir: str = ""
    site_latitude: float | None = None
    site_longitude: float | None = None
    site_name: str = ""

    def resolved_state_dir(self) -> Path:
        """Where durable state lives: the configured dir, systemd's StateDirectory, or XDG."""
        if self.state_dir:
            return Path(self.state_dir)
        if os.environ.get("STATE_DIRECTORY"):
            return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(base) / "vigil"


@dataclass(frozen=True)
class InferenceSettings:
    model_dir: str = ""
    threads: int = 1
    country: str = "auto"
    top_n: int = 10
    min_read_confidence: float = 0.5
    motion_gate: bool = True
    motion_threshold: float = 4.0
    idle_detect_every_s: float = 1.0


@dataclass(frozen=True)
class WatchdogSettings:
    stall_s: float = 5.0
    interval_s: float = 2.0


@dataclass(frozen=True)
class StatusSettings:
    socket: str = ""


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "info"
    reads_stdout: bool = True


def _site_check(u: UnitSettings) -> str | None:
    if (u.site_latitude is None) != (u.site_longitude is None):
        return "site_latitude and site_longitude must be given together"
    return None


SECTIONS: dict[str, Section] = {
    "unit": Section(
        UnitSettings,
        {
            "camera_id": Key(str, "sim-1", nonempty=True, doc="Identifier sent with every read."),
            "state_dir": Key(str, "", doc="Durable state directory; empty = $STATE_DIRECTORY "
                             "(systemd) or $XDG_STATE_HOME/vigil."),
            "site_latitude": Key(float, None, min=-90, max=90, nullable=True,
                                 doc="Provisioned latitude of a fixed unit (degrees)."),
            "site_longitude": Key(float, None, min=-180, max=180, nullable=True,
                                  doc="Provisioned longitude of a fixed unit (degrees)."),
            "site_name": Key(str, "", doc="Human name of the site, for operators."),
        },
        doc="Identity and location of this unit.",
        check=_site_check,
    ),
    "inference": Section(
        InferenceSettings,
        {
            "model_dir": Key(str, "", doc="Folder with the .tflite models and manifests; empty = "
                             "the models shipped in the package."),
            "threads": Key(int, 1, min=1, max=8, doc="Interpreter threads per model."),
            "country": Key(str, "auto", choices=("auto", "us", "eu", "br"),
                           doc="Plate layout hint."),
            "top_n": Key(int, 10, min=1, max=20, doc="Candidates kept per read."),
            "min_read_confidence": Key(float, 0.5, min=0.0, max=1.0,
                                       doc="Voted reads below this are not emitted."),
            "motion_gate": Key(bool, True, doc="Skip detection on frames without motion."),
            "motion_threshold": Key(float, 4.0, min=0.1, max=100.0,
                                    doc="Mean absolute luma difference (0-255) that counts as "
                                    "motion on the sub-sampled frame."),
            "idle_detect_every_s": Key(float, 1.0, min=0.1, max=60.0,
                                       doc="Run detection at least this often even without "
                                       "motion."),
        },
        doc="Plate detection and reading.",
    ),
    "supervisor": Section(
        SupervisorSettings,
        {
            "backoff_initial_s": Key(float, 0.5, min=0.01, max=60.0),
            "backoff_max_s": Key(float, 30.0, min=0.1, max=3600.0),
            "degrade_after": Key(int, 5, min=1, max=1000,
                                 doc="Failures within failure_window_s that mark a worker "
                                 "degraded."),
            "failure_window_s": Key(float, 300.0, min=1.0, max=86400.0),
            "stop_timeout_s": Key(float, 4.0, min=0.5, max=30.0,
                                  doc="How long shutdown waits for workers (systemd allows 5 s "
                                  "before SIGKILL in our unit)."),
        },
        doc="Worker restarts.",
        check=lambda s: "backoff_max_s must be >= backoff_initial_s"
        if s.backoff_max_s < s.backoff_initial_s else None,
    ),
    "watchdog": Section(
        WatchdogSettings,
        {
            "stall_s": Key(float, 5.0, min=0.5, max=300.0,
                           doc="No processed frame for this long stops the watchdog pings."),
            "interval_s": Key(float, 2.0, min=0.1, max=60.0,
                              doc="Ping interval when $WATCHDOG_USEC is not set."),
        },
        doc="systemd watchdog.",
    ),
    "status": Section(
        StatusSettings,
        {"socket": Key(str, "", doc="Control socket path; empty = <state_dir>/control.sock.")},
        doc="Local control socket for `vigil status`.",
    ),
    "logging": Section(
        LoggingSettings,
        {
            "level": Key(str, "info", choices=("debug", "info", "warning", "error")),
            "reads_stdout": Key(bool, True, doc="Print each read as a JSON line on stdout."),
        },
        doc="Logs and read output.",
    ),
}


def cross_check(built: dict[str, Any]) -> str | None:
    """Rules that span sections."""
    return None
