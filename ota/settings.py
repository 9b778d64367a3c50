"""``[ota]``: every key declared once, on the settings class (``drivers.config_keys.setting``).

Units are in the names. The daemon's config module validates TOML into :class:`OtaSettings`;
``firmware/app/ota_glue.py`` mounts it as a section with its cross-field rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from drivers.config_keys import setting


@dataclass(frozen=True)
class OtaSettings:
    """Config section ``[ota]``. Disabled unless a repository and a trust root are set."""

    enabled: bool = setting(False, doc="Check a signed update repository and apply updates "
                            "through the A/B slots (docs/ota.md).")
    repository: str = setting("", doc="Base URL of the static repository (https://...), or a "
                              "directory (an installer's USB copy).")
    trusted_root: str = setting("", doc="The vendor's 1.root.json provisioned on this unit.")
    root_dir: str = setting("", doc="Slots and OTA state; empty = <state_dir>/ota.")
    channel: str = setting("stable", nonempty=True, doc="Target directory in the repository.")
    check_interval_s: float = setting(3600.0, min=1.0, max=604800.0,
                                      doc="Time between repository checks.")
    auto_switch: bool = setting(True, doc="Switch to a staged version at once (else it waits "
                                "in the inactive slot).")
    trial_deadline_s: float = setting(300.0, min=10.0, max=86400.0,
                                      doc="A new version must pass the health gate within this.")
    trial_max_boots: int = setting(3, min=1, max=20,
                                   doc="Starts on trial before a rollback (crash loop).")
    gate_hold_s: float = setting(10.0, min=0.0, max=3600.0,
                                 doc="How long the gate's conditions must hold.")
    gate_min_fps: float = setting(0.5, min=0.0, max=120.0,
                                  doc="Frame rate that counts as frames flowing.")
    require_read: bool = setting(False, doc="The gate also needs one plate read.")
    daily_bytes_cap: int = setting(0, min=0, max=10**12,
                                   doc="Update bytes per day over the uplink; 0 = unmetered.")
    whole_image: str = setting("none", choices=("none", "rauc"),
                               doc="rauc: RAUC's mark-good / mark-bad of the booted image "
                               "follow the same health gate after every boot (docs/ota.md).")
    connect_timeout_s: float = setting(10.0, min=1.0, max=120.0,
                                       doc="Connection timeout to the repository.")
    read_timeout_s: float = setting(30.0, min=1.0, max=600.0,
                                    doc="A stall longer than this aborts a download (it resumes).")


@dataclass(frozen=True)
class UnitOta:
    """What a unit-side command (``vigil ota install-usb``) needs from the unit's configuration:
    ``ota`` does not read the daemon's config itself (imports flow one way);
    ``firmware.app.ota_glue.unit_ota`` makes it."""

    settings: OtaSettings
    root: Path
    unit_id: str
