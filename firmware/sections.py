"""Every configuration section and key, declared once.

Sections whose settings belong to another package build that package's frozen settings class
directly, so there is no second copy of the defaults to drift.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.camera import CameraSettings
from drivers.gps import GpsSettings
from drivers.illuminator import IlluminatorSettings
from firmware.config import Key, Section
from firmware.hotlists import HotlistSettings
from firmware.supervisor import SupervisorSettings
from firmware.uplink import UplinkSettings
from inference.tracker import TrackerSettings
from storage.settings import RETENTION_POLICY_MAX_DAYS, StoreSettings


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
    min_read_confidence: float = 0.25
    motion_gate: bool = True
    motion_threshold: float = 4.0
    idle_detect_every_s: float = 1.0


@dataclass(frozen=True)
class WatchdogSettings:
    stall_s: float = 5.0
    interval_s: float = 2.0


@dataclass(frozen=True)
class KeySettings:
    kek_file: str = ""


@dataclass(frozen=True)
class StatusSettings:
    socket: str = ""


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "info"
    reads_stdout: bool = False


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
            "min_read_confidence": Key(float, 0.25, min=0.0, max=1.0,
                                       doc="A pass whose vote is weaker than this (the least "
                                       "agreed character's share of the vote) is not stored."),
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
            "reads_stdout": Key(bool, False, doc="Print each read as a JSON line on stdout "
                                "(simulation only: under systemd stdout is the journal)."),
        },
        doc="Logs and read output.",
    ),
}


def _camera(source: str, stall_file: str, **kw: Any) -> CameraSettings:
    if kw["backend"] == "replay" and not source:
        source = str(bundled_footage())
    return CameraSettings(source=source, stall_file=stall_file or None,
                          **kw)


def bundled_footage() -> Path:
    """The sample footage shipped inside the package (the simulation rig's camera)."""
    return Path(__file__).resolve().parent / "sample" / "footage.avi"


def _store(path: str, search_roles: tuple[str, ...], **kw: Any) -> StoreSettings:
    # An empty path is resolved against [unit] state_dir by finalize().
    return StoreSettings(path=Path(path), search_roles=tuple(search_roles), **kw)


SECTIONS["camera"] = Section(
    _camera,
    {
        "backend": Key(str, "picamera2", choices=("replay", "picamera2", "v4l2", "gstreamer"),
                       doc="replay = file/folder replay (simulation); picamera2 = Raspberry Pi "
                       "camera; v4l2 = /dev/videoN; gstreamer = a pipeline (Jetson CSI)."),
        "source": Key(str, "", doc="File/folder (replay), device (v4l2), pipeline (gstreamer) "
                      "or camera index (picamera2). Empty = the bundled sample footage."),
        "width": Key(int, 1280, min=0, max=4096, doc="Frame width in pixels (0 = as delivered, "
                     "replay only)."),
        "height": Key(int, 720, min=0, max=3040),
        "fps": Key(float, 10.0, min=1.0, max=120.0),
        "loop": Key(bool, True, doc="Replay: start again at the end."),
        "realtime": Key(bool, True, doc="Replay: pace frames at fps (false = as fast as read)."),
        "shutter_max_us": Key(int, 2000, min=50, max=100000,
                              doc="Longest exposure; short shutters freeze moving plates."),
        "gain_max": Key(float, 8.0, min=1.0, max=64.0),
        "stall_file": Key(str, "", doc="Test hook: frames stop while this file exists."),
    },
    doc="The camera sensor.",
    check=lambda c: "width and height must both be set (or both 0 for replay)"
    if (c.width == 0) != (c.height == 0) or (c.width == 0 and c.backend != "replay") else None,
)

SECTIONS["tracker"] = Section(
    TrackerSettings,
    {
        "max_gap_s": Key(float, 1.0, min=0.1, max=10.0,
                         doc="A track survives this long without a detection."),
        "iou_min": Key(float, 0.05, min=0.0, max=1.0),
        "max_centre_jump": Key(float, 1.5, min=0.1, max=10.0,
                               doc="Largest jump between frames, in box diagonals."),
        "text_weight": Key(float, 0.3, min=0.0, max=1.0),
        "min_frames": Key(int, 2, min=1, max=50, doc="Fewer observations are noise."),
        "dedup_window_s": Key(float, 10.0, min=0.0, max=3600.0,
                              doc="Same text, same direction within this window = one pass."),
        "dedup_max_edits": Key(int, 0, min=0, max=2),
        "direction_mode": Key(str, "approach", choices=("approach", "lateral")),
        "direction_min_change": Key(float, 0.15, min=0.01, max=2.0),
        "no_plate_min_frames": Key(int, 5, min=1, max=100),
        "no_plate_min_height_px": Key(float, 120.0, min=10.0, max=4000.0),
        "candidates": Key(int, 5, min=1, max=10),
        "max_active_tracks": Key(int, 64, min=1, max=1024),
    },
    doc="Tracking plates across frames and voting one read per pass.",
)

SECTIONS["store"] = Section(
    _store,
    {
        "path": Key(str, "", doc="SQLite file; empty = <state_dir>/vigil.db."),
        "retention_days": Key(int, 30, min=1, max=RETENTION_POLICY_MAX_DAYS,
                              doc="Reads and images older than this are crypto-shredded."),
        "max_db_mb": Key(float, 4096.0, min=1.0, max=1048576.0,
                         doc="Size budget of the database plus WAL."),
        "purge_interval_s": Key(float, 3600.0, min=60.0, max=86400.0),
        "checkpoint_every": Key(int, 1000, min=1, max=100000,
                                doc="Audit entries between signed checkpoints."),
        "integrity_check": Key(str, "quick", choices=("quick", "full", "off"),
                               doc="SQLite integrity check at start."),
        "budget_low_water": Key(float, 0.9, min=0.5, max=0.99),
        "drop_unsent_reads_when_full": Key(bool, True),
        "search_roles": Key(tuple, ("operator", "investigator", "technician"),
                            doc="Roles allowed to search reads."),
        "counters_keep_days": Key(int, 400, min=1, max=3660),
        "group_commit_max": Key(int, 512, min=1, max=10000),
        "page_size": Key(int, 8192, choices=(4096, 8192, 16384, 32768, 65536)),
    },
    doc="The encrypted local store.",
)

SECTIONS["keys"] = Section(
    KeySettings,
    {"kek_file": Key(str, "", doc="Key-encryption key file (0600); empty = "
                     "<state_dir>/kek.bin. Never put it beside a copy of the database.")},
    doc="Device keys.",
)


def _illum_check(s: IlluminatorSettings) -> str | None:
    if s.night_below >= s.day_above:
        return "night_below must be lower than day_above (the gap is the hysteresis)"
    pins = [s.ir_led_pin, s.ir_cut_pin] + ([s.ir_cut_pin_b] if s.ir_cut_mode == "pulse" else [])
    if len(set(pins)) != len(pins):
        return "ir_led_pin, ir_cut_pin (and ir_cut_pin_b in pulse mode) must differ"
    return None


SECTIONS["illuminator"] = Section(
    IlluminatorSettings,
    {
        "enabled": Key(bool, True, doc="Drive the IR LEDs and IR-cut filter."),
        "pin_factory": Key(str, "lgpio", choices=("mock", "lgpio", "rpigpio", "pigpio", "native"),
                           doc="gpiozero pin backend; mock = simulated pins (simulation rig)."),
        "ir_led_pin": Key(int, 18, min=0, max=27, doc="BCM pin of the IR LED driver (PWM)."),
        "pwm_hz": Key(int, 1000, min=100, max=40000),
        "night_led_level": Key(float, 1.0, min=0.0, max=1.0),
        "ir_cut_mode": Key(str, "level", choices=("level", "pulse"),
                           doc="level = one pin held; pulse = H-bridge pulsed on two pins."),
        "ir_cut_pin": Key(int, 23, min=0, max=27),
        "ir_cut_pin_b": Key(int, 24, min=0, max=27),
        "ir_cut_active_high": Key(bool, True),
        "ir_cut_pulse_ms": Key(int, 100, min=20, max=1000),
        "night_below": Key(float, 40.0, min=0.0, max=255.0,
                           doc="Scene brightness (mean luma, exposure-normalised) below which "
                           "night mode starts."),
        "day_above": Key(float, 90.0, min=0.0, max=255.0),
        "confirm_s": Key(float, 5.0, min=0.0, max=600.0,
                         doc="A change must persist this long."),
        "min_dwell_s": Key(float, 60.0, min=0.0, max=3600.0,
                           doc="Least time in one mode before switching back."),
        "sample_interval_s": Key(float, 1.0, min=0.1, max=60.0),
        "reference_exposure_us": Key(int, 2000, min=50, max=100000),
    },
    doc="IR illuminator and IR-cut filter (day/night).",
    check=_illum_check,
)

SECTIONS["gps"] = Section(
    GpsSettings,
    {
        "mode": Key(str, "site", choices=("site", "gps", "none"),
                    doc="site = [unit] site_latitude/longitude (pole unit); gps = NMEA receiver "
                    "(mobile unit); none."),
        "port": Key(str, "/dev/ttyAMA0", doc="GPS serial device or pyserial URL."),
        "baudrate": Key(int, 9600, min=4800, max=921600),
        "max_fix_age_s": Key(float, 10.0, min=1.0, max=600.0,
                             doc="An older fix is reported as no location."),
    },
    doc="Where reads happened.",
)


@dataclass(frozen=True)
class ModemSection:
    """[modem]: the modem settings plus whether one is fitted."""

    enabled: bool = False
    port: str = "/dev/ttyUSB2"
    baud: int = 115200
    power_gpio: int = -1
    power_active_high: bool = True
    power_off_s: float = 5.0
    poll_interval_s: float = 30.0
    command_timeout_s: float = 3.0
    reregister_after_s: float = 120.0
    radio_cycle_after_s: float = 300.0
    power_cycle_after_s: float = 900.0
    power_cycle_repeat_s: float = 3600.0
    unresponsive_polls_to_power_cycle: int = 3
    boot_wait_s: float = 30.0

    def driver_settings(self) -> Any:
        import dataclasses

        from drivers.modem import ModemSettings

        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(ModemSettings)}
        fields["power_gpio"] = None if self.power_gpio < 0 else self.power_gpio
        return ModemSettings(**fields)


def _uplink_check(u: UplinkSettings) -> str | None:
    if not u.endpoint:
        return None
    if not u.endpoint.startswith("https://"):
        return "endpoint must be an https:// URL (TLS is never optional)"
    missing = [k for k in ("ca_file", "cert_file", "key_file") if not getattr(u, k)]
    if missing:
        return f"endpoint is set but {', '.join(missing)} is empty"
    if u.backoff_max_s < u.backoff_initial_s:
        return "backoff_max_s must be >= backoff_initial_s"
    return None


def _modem_check(m: ModemSection) -> str | None:
    if not m.reregister_after_s <= m.radio_cycle_after_s <= m.power_cycle_after_s:
        return "recovery ladder must climb: reregister_after_s <= radio_cycle_after_s <= " \
               "power_cycle_after_s"
    return None


def _hotlists(names: tuple[str, ...], **kw: Any) -> HotlistSettings:
    import re

    for n in names:
        if not isinstance(n, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", n):
            raise ValueError(f"names: {n!r} is not a list name ([A-Za-z0-9_-]+)")
    return HotlistSettings(names=tuple(names), **kw)


SECTIONS["uplink"] = Section(
    UplinkSettings,
    {
        "endpoint": Key(str, "", doc="Agency ingest base URL (https). Empty = no uplink: reads "
                        "queue in the store's outbox."),
        "ca_file": Key(str, "", doc="The agency CA certificate, pinned: the only trust anchor."),
        "cert_file": Key(str, "", doc="This device's certificate (from provisioning)."),
        "key_file": Key(str, "", doc="This device's private key (0600)."),
        "device_id": Key(str, "", doc="Must equal the certificate's CN; empty = [unit] "
                         "camera_id."),
        "batch_max_reads": Key(int, 200, min=1, max=5000),
        "batch_max_bytes": Key(int, 262144, min=4096, max=16777216,
                               doc="Uncompressed payload bytes per batch."),
        "daily_bytes_cap": Key(int, 52428800, min=0, max=10**12,
                               doc="Bytes per UTC day (0 = no cap); alerts are exempt."),
        "send_images": Key(bool, False, doc="Send plate crops and overview images too."),
        "image_budget_fraction": Key(float, 0.5, min=0.0, max=1.0,
                                     doc="Images only while less of the daily cap is spent."),
        "backoff_initial_s": Key(float, 2.0, min=0.1, max=600.0),
        "backoff_max_s": Key(float, 300.0, min=0.1, max=86400.0),
        "timeout_s": Key(float, 20.0, min=1.0, max=300.0),
        "connect_timeout_s": Key(float, 10.0, min=1.0, max=120.0),
        "drain_rate_per_s": Key(float, 25.0, min=0.1, max=1e6,
                                doc="Steady backlog drain rate (reads/s); live reads and alerts "
                                "keep their room."),
        "alert_retry_min_s": Key(float, 2.0, min=0.0, max=60.0),
        "alert_lane": Key(bool, True, doc="A second connection so alerts never wait for a "
                          "batch."),
        "idle_poll_s": Key(float, 5.0, min=0.1, max=300.0),
        "gzip_level": Key(int, 6, min=1, max=9),
    },
    doc="Forwarding reads and alerts to the agency over HTTPS with mutual TLS.",
    check=_uplink_check,
)

SECTIONS["hotlists"] = Section(
    _hotlists,
    {
        "path": Key(str, "", doc="Directory of the encrypted lists; empty = "
                    "<state_dir>/hotlists."),
        "agency_public_key": Key(str, "", doc="The agency's Ed25519 key (base64 of the raw 32 "
                                 "bytes, or a file). Empty = no hotlist matching."),
        "names": Key(tuple, (), doc="Lists to poll and match."),
        "poll_interval_s": Key(float, 300.0, min=30.0, max=86400.0),
        "max_bytes": Key(int, 268435456, min=1048576, max=1073741824,
                         doc="Largest list accepted (decompressed)."),
        "max_chain": Key(int, 50, min=1, max=1000, doc="Deltas kept before a full list."),
        "fuzzy": Key(bool, True, doc="OCR-confusion and partial-read rules."),
        "max_unknown": Key(int, 2, min=0, max=3, doc="'?' allowed in a read."),
        "min_known": Key(int, 4, min=1, max=10,
                         doc="Known characters required for a partial match."),
    },
    doc="Signed hotlists and matching.",
)

SECTIONS["modem"] = Section(
    ModemSection,
    {
        "enabled": Key(bool, False, doc="A cellular modem is fitted and Vigil supervises it "
                       "(the data session stays with ModemManager/NetworkManager)."),
        "port": Key(str, "/dev/ttyUSB2", doc="AT command port or pyserial URL."),
        "baud": Key(int, 115200, min=9600, max=4000000),
        "power_gpio": Key(int, -1, min=-1, max=27, doc="BCM pin that cuts modem power; -1 = "
                          "none (no power cycling)."),
        "power_active_high": Key(bool, True),
        "power_off_s": Key(float, 5.0, min=0.5, max=60.0),
        "poll_interval_s": Key(float, 30.0, min=5.0, max=3600.0),
        "command_timeout_s": Key(float, 3.0, min=0.5, max=60.0),
        "reregister_after_s": Key(float, 120.0, min=30.0, max=86400.0),
        "radio_cycle_after_s": Key(float, 300.0, min=30.0, max=86400.0),
        "power_cycle_after_s": Key(float, 900.0, min=30.0, max=86400.0),
        "power_cycle_repeat_s": Key(float, 3600.0, min=300.0, max=86400.0),
        "unresponsive_polls_to_power_cycle": Key(int, 3, min=1, max=100),
        "boot_wait_s": Key(float, 30.0, min=1.0, max=300.0),
    },
    doc="Cellular modem supervision (AT channel, recovery ladder).",
    check=_modem_check,
)


def _mount_console() -> None:
    from firmware.console import CONSOLE_SECTION

    SECTIONS["console"] = CONSOLE_SECTION


_mount_console()


def _mount_ota() -> None:
    from firmware.ota_glue import OTA_SECTION

    SECTIONS["ota"] = OTA_SECTION


_mount_ota()


def cross_check(built: dict[str, Any]) -> str | None:
    """Rules that span sections."""
    u = built["unit"]
    if built["gps"].mode == "site" and u.site_latitude is None:
        return "[gps] mode = \"site\" needs [unit] site_latitude and site_longitude"
    return None


def finalize(built: dict[str, Any]) -> dict[str, Any]:
    """Resolve defaults that depend on other sections (paths under the state directory)."""
    import dataclasses

    state = built["unit"].resolved_state_dir()
    if str(built["store"].path) in ("", "."):
        built["store"] = dataclasses.replace(built["store"], path=state / "vigil.db")
    if not built["keys"].kek_file:
        built["keys"] = dataclasses.replace(built["keys"], kek_file=str(state / "kek.bin"))
    built["gps"] = dataclasses.replace(built["gps"], site_latitude=built["unit"].site_latitude,
                                       site_longitude=built["unit"].site_longitude)
    if not built["uplink"].device_id:
        built["uplink"] = dataclasses.replace(built["uplink"], device_id=built["unit"].camera_id)
    if not built["hotlists"].path:
        built["hotlists"] = dataclasses.replace(built["hotlists"], path=str(state / "hotlists"))
    if not built["status"].socket:
        built["status"] = dataclasses.replace(built["status"], socket=str(state / "control.sock"))
    return built
