"""Every configuration section, declared once.

Each key is declared once, with its default, range and doc, on the frozen settings class that
uses it (:func:`drivers.config_keys.setting`); a section here only names that class, its
cross-field rule and, where one is needed, a builder. Sections owned by other packages (camera,
store, tracker, ...) declare their keys in those packages, so there is no second copy of a
default to drift (``tests/test_firmware_config.py`` checks that none has).
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.camera import CameraSettings
from drivers.config_keys import Section, setting
from drivers.gps import GpsSettings
from drivers.illuminator import IlluminatorSettings
from drivers.modem import ModemSettings
from firmware.app.ota_glue import OTA_SECTION
from firmware.app.supervisor import SupervisorSettings
from firmware.console.serial_console import ConsoleSettings, check_settings
from firmware.link.hotlists import HotlistSettings
from firmware.uplink.settings import UplinkSettings
from inference.tracker import TrackerSettings
from storage.settings import StoreSettings


@dataclass(frozen=True)
class UnitSettings:
    """Config section ``[unit]``."""

    camera_id: str = setting("sim-1", nonempty=True, doc="Identifier sent with every read.")
    state_dir: str = setting("", doc="Durable state directory; empty = $STATE_DIRECTORY "
                             "(systemd) or $XDG_STATE_HOME/vigil.")
    site_latitude: float | None = setting(None, type=float, min=-90, max=90, nullable=True,
                                          doc="Provisioned latitude of a fixed unit (degrees).")
    site_longitude: float | None = setting(None, type=float, min=-180, max=180, nullable=True,
                                           doc="Provisioned longitude of a fixed unit (degrees).")
    site_name: str = setting("", doc="Human name of the site, for operators.")

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
    """Config section ``[inference]``."""

    model_dir: str = setting("", doc="Folder with the .tflite models and manifests; empty = "
                             "the models shipped in the package.")
    threads: int = setting(2, min=1, max=8, doc="Interpreter threads per model (2 runs the "
                           "frame loop about 30 % faster than 1 at the same memory, "
                           "docs/benchmarks.md; 1 leaves a core for other work).")
    country: str = setting("auto", choices=("auto", "us", "eu", "br"), doc="Plate layout hint.")
    top_n: int = setting(10, min=1, max=20, doc="Candidates kept per read.")
    min_read_confidence: float = setting(0.25, min=0.0, max=1.0,
                                         doc="A pass whose vote is weaker than this (the least "
                                         "agreed character's share of the vote) is not stored.")
    motion_gate: bool = setting(True, doc="Skip detection on frames without motion.")
    motion_threshold: float = setting(4.0, min=0.1, max=100.0,
                                      doc="Mean absolute luma difference (0-255) that counts as "
                                      "motion on the sub-sampled frame.")
    idle_detect_every_s: float = setting(1.0, min=0.1, max=60.0,
                                         doc="Run detection at least this often even without "
                                         "motion.")
    zone_x: int = setting(0, min=0, max=4095, doc="Reading zone: left edge in frame pixels.")
    zone_y: int = setting(0, min=0, max=3039, doc="Reading zone: top edge in frame pixels.")
    zone_width: int = setting(0, min=0, max=4096,
                              doc="Reading zone width in frame pixels; 0 = the whole frame. "
                              "Plates are looked for only inside the zone, at its native "
                              "pixels: on a sensor over 1920x1080, draw it round the lanes "
                              "(about 1280x720 keeps distant plates at the detector's scale).")
    zone_height: int = setting(0, min=0, max=3040,
                               doc="Reading zone height in frame pixels; 0 with zone_width 0.")


@dataclass(frozen=True)
class WatchdogSettings:
    """Config section ``[watchdog]``."""

    stall_s: float = setting(5.0, min=0.5, max=300.0,
                             doc="No processed frame for this long stops the watchdog pings.")
    interval_s: float = setting(2.0, min=0.1, max=60.0,
                                doc="Ping interval when $WATCHDOG_USEC is not set.")


@dataclass(frozen=True)
class KeySettings:
    """Config section ``[keys]``."""

    kek_file: str = setting("", doc="Key-encryption key file (0600); empty = "
                            "<state_dir>/kek.bin. Never put it beside a copy of the database.")
    source: str = setting("auto", choices=("auto", "tpm", "file"),
                          doc="Where the KEK lives: tpm (sealed by the unit's TPM 2.0), file "
                          "(kek_file), auto (the TPM for a new unit that has one, else the "
                          "file; a unit with a file KEK keeps it). storage/tpm.py.")
    tpm_tcti: str = setting("", doc="TPM transport for tpm2-tools; empty = $VIGIL_TPM_TCTI, "
                            "else device:/dev/tpmrm0.")


@dataclass(frozen=True)
class StatusSettings:
    """Config section ``[status]``."""

    socket: str = setting("", doc="Control socket path; empty = <state_dir>/control.sock.")


@dataclass(frozen=True)
class LoggingSettings:
    """Config section ``[logging]``."""

    level: str = setting("info", choices=("debug", "info", "warning", "error"))
    reads_stdout: bool = setting(False, doc="Print each read as a JSON line on stdout "
                                 "(simulation only: under systemd stdout is the journal).")


def bundled_footage() -> Path:
    """The sample footage shipped inside the package (the simulation rig's camera)."""
    return Path(__file__).resolve().parents[1] / "sample" / "footage.avi"


def _camera(**kw: Any) -> CameraSettings:
    if kw["backend"] == "replay" and not kw["source"]:
        kw["source"] = str(bundled_footage())
    return CameraSettings(**kw)


def _hotlists(**kw: Any) -> HotlistSettings:
    for n in kw["names"]:
        if not isinstance(n, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", n):
            raise ValueError(f"names: {n!r} is not a list name ([A-Za-z0-9_-]+)")
    return HotlistSettings(**kw)


def _site_check(u: UnitSettings) -> str | None:
    if (u.site_latitude is None) != (u.site_longitude is None):
        return "site_latitude and site_longitude must be given together"
    return None


def _backoff_check(s: SupervisorSettings) -> str | None:
    return "backoff_max_s must be >= backoff_initial_s" \
        if s.backoff_max_s < s.backoff_initial_s else None


def _inference_check(s: InferenceSettings) -> str | None:
    if (s.zone_width == 0) != (s.zone_height == 0):
        return "zone_width and zone_height must both be set (or both 0 for the whole frame)"
    if s.zone_width and min(s.zone_width, s.zone_height) < 64:
        return "zone_width and zone_height must be at least 64 pixels"
    if not s.zone_width and (s.zone_x or s.zone_y):
        return "zone_x and zone_y need zone_width and zone_height"
    return None


def _camera_check(c: CameraSettings) -> str | None:
    if (c.width == 0) != (c.height == 0) or (c.width == 0 and c.backend != "replay"):
        return "width and height must both be set (or both 0 for replay)"
    return None


def _illum_check(s: IlluminatorSettings) -> str | None:
    if s.night_below >= s.day_above:
        return "night_below must be lower than day_above (the gap is the hysteresis)"
    pins = [s.ir_led_pin, s.ir_cut_pin] + ([s.ir_cut_pin_b] if s.ir_cut_mode == "pulse" else [])
    if len(set(pins)) != len(pins):
        return "ir_led_pin, ir_cut_pin (and ir_cut_pin_b in pulse mode) must differ"
    return None


def _uplink_check(u: UplinkSettings) -> str | None:
    if u.protocol == "mqtt":
        return _mqtt_check(u)
    if not u.endpoint:
        return None
    return _endpoint_check(u, "endpoint")


def _endpoint_check(u: UplinkSettings, what: str) -> str | None:
    if u.endpoint and not u.endpoint.startswith("https://"):
        return "endpoint must be an https:// URL (TLS is never optional)"
    missing = [k for k in ("ca_file", "cert_file", "key_file") if not getattr(u, k)]
    if missing:
        return f"{what} is set but {', '.join(missing)} is empty"
    if u.backoff_max_s < u.backoff_initial_s:
        return "backoff_max_s must be >= backoff_initial_s"
    return None


def _mqtt_check(u: UplinkSettings) -> str | None:
    """protocol = "mqtt": a broker URL, topic levels that cannot widen a subscription, and
    credentials that make sense. The device_id level is checked in :func:`cross_check` (it
    may come from [unit] camera_id)."""
    from firmware.uplink.mqtt_topics import parse_broker, segment_problem

    if not u.mqtt_broker:
        return "protocol = \"mqtt\" needs mqtt_broker"
    try:
        parse_broker(u.mqtt_broker)
    except ValueError as e:
        return str(e)
    for key in ("mqtt_agency", "mqtt_site"):
        problem = segment_problem(getattr(u, key))
        if problem:
            return f"{key} cannot be a topic level: {problem}"
    if u.mqtt_password and not u.mqtt_username:
        return "mqtt_password is set but mqtt_username is empty"
    return _endpoint_check(u, "mqtt_broker")


def _modem_check(m: ModemSettings) -> str | None:
    if not m.reregister_after_s <= m.radio_cycle_after_s <= m.power_cycle_after_s:
        return "recovery ladder must climb: reregister_after_s <= radio_cycle_after_s <= " \
               "power_cycle_after_s"
    return None


SECTIONS: dict[str, Section] = {
    "unit": Section.of(UnitSettings, doc="Identity and location of this unit.",
                       check=_site_check),
    "inference": Section.of(InferenceSettings, doc="Plate detection and reading.",
                            check=_inference_check),
    "supervisor": Section.of(SupervisorSettings, doc="Worker restarts.", check=_backoff_check),
    "watchdog": Section.of(WatchdogSettings, doc="systemd watchdog."),
    "status": Section.of(StatusSettings, doc="Local control socket for `vigil status`."),
    "logging": Section.of(LoggingSettings, doc="Logs and read output."),
    "camera": Section.of(CameraSettings, doc="The camera sensor.", check=_camera_check,
                         build=_camera),
    "tracker": Section.of(TrackerSettings,
                          doc="Tracking plates across frames and voting one read per pass."),
    "store": Section.of(StoreSettings, doc="The encrypted local store."),
    "keys": Section.of(KeySettings, doc="Device keys."),
    "illuminator": Section.of(IlluminatorSettings,
                              doc="IR illuminator and IR-cut filter (day/night).",
                              check=_illum_check),
    "gps": Section.of(GpsSettings, doc="Where reads happened."),
    "uplink": Section.of(UplinkSettings,
                         doc="Forwarding reads and alerts to the agency over HTTPS or MQTT 5, "
                         "with mutual TLS.", check=_uplink_check),
    "hotlists": Section.of(HotlistSettings, doc="Signed hotlists and matching.", build=_hotlists),
    "modem": Section.of(ModemSettings,
                        doc="Cellular modem supervision (AT channel, recovery ladder).",
                        check=_modem_check),
    "console": Section.of(ConsoleSettings,
                          doc="Technician serial console (see docs/console.md).",
                          check=check_settings),
    "ota": OTA_SECTION,
}


def cross_check(built: dict[str, Any]) -> str | None:
    """Rules that span sections."""
    u = built["unit"]
    inf, cam = built["inference"], built["camera"]
    if inf.zone_width and cam.width and inf.zone_x + inf.zone_width > cam.width:
        return "[inference] zone_x + zone_width is beyond [camera] width"
    if inf.zone_height and cam.height and inf.zone_y + inf.zone_height > cam.height:
        return "[inference] zone_y + zone_height is beyond [camera] height"
    if built["gps"].mode == "site" and u.site_latitude is None:
        return "[gps] mode = \"site\" needs [unit] site_latitude and site_longitude"
    up = built["uplink"]
    if up.protocol == "mqtt":
        from firmware.uplink.mqtt_topics import segment_problem

        problem = segment_problem(up.device_id or u.camera_id)
        if problem:
            return f"[uplink] device_id (or [unit] camera_id) cannot be an MQTT topic level: " \
                   f"{problem}"
    return None


def finalize(built: dict[str, Any]) -> dict[str, Any]:
    """Resolve defaults that depend on other sections (paths under the state directory)."""
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
