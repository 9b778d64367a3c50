"""Where the daemon meets :mod:`ota`: the ``[ota]`` config section and the worker's wiring.

``ota`` does not import ``firmware`` (imports flow one way), so the facts its health gate needs
(READY, frame rate, reads, uplink state), the model check (the existing manifest loader), the
audit sink and the restart request are handed to it here as plain callables and records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from firmware.config import Key, Section
from ota.whole_image import RaucHook
from ota.worker import HealthSample, OtaSettings, OtaWorker


def _check(s: OtaSettings) -> str | None:
    if s.enabled and not (s.repository and s.trusted_root):
        return "[ota] enabled needs repository and trusted_root"
    return None


OTA_SECTION = Section(
    OtaSettings,
    {
        "enabled": Key(bool, False, doc="Check a signed update repository and apply updates "
                       "through the A/B slots (docs/ota.md)."),
        "repository": Key(str, "", doc="Base URL of the static repository (https://...), or "
                          "a directory (an installer's USB copy)."),
        "trusted_root": Key(str, "", doc="The vendor's 1.root.json provisioned on this unit."),
        "root_dir": Key(str, "", doc="Slots and OTA state; empty = <state_dir>/ota."),
        "channel": Key(str, "stable", nonempty=True, doc="Target directory in the repository."),
        "check_interval_s": Key(float, 3600.0, min=1.0, max=604800.0),
        "auto_switch": Key(bool, True, doc="Switch to a staged version at once (else it waits "
                           "in the inactive slot)."),
        "trial_deadline_s": Key(float, 300.0, min=10.0, max=86400.0,
                                doc="A new version must pass the health gate within this."),
        "trial_max_boots": Key(int, 3, min=1, max=20, doc="Starts on trial before a rollback "
                               "(crash loop)."),
        "gate_hold_s": Key(float, 10.0, min=0.0, max=3600.0,
                           doc="How long the gate's conditions must hold."),
        "gate_min_fps": Key(float, 0.5, min=0.0, max=120.0),
        "require_read": Key(bool, False, doc="The gate also needs one plate read."),
        "daily_bytes_cap": Key(int, 0, min=0, max=10**12,
                               doc="Update bytes per day over the uplink; 0 = unmetered."),
        "whole_image": Key(str, "none", choices=("none", "rauc"),
                           doc="rauc: RAUC's mark-good / mark-bad of the booted image follow "
                           "the same health gate after every boot (docs/ota.md)."),
        "connect_timeout_s": Key(float, 10.0, min=1.0, max=120.0),
        "read_timeout_s": Key(float, 30.0, min=1.0, max=600.0,
                              doc="A stall longer than this aborts a download (it resumes)."),
    },
    doc="Signed over-the-air updates (TUF metadata, A/B slots, health-gated commit).",
    check=_check,
)


def check_models(model_dir: Path) -> None:
    """A staged model directory must load with the manifest loader, file sizes and hashes."""
    import hashlib

    from inference.manifest import ModelManifest

    manifests = sorted(model_dir.glob("*.json"))
    if not manifests:
        raise ValueError(f"no model manifests in {model_dir}")
    for path in manifests:
        m = ModelManifest.load(path)
        model = model_dir / m.file
        data = model.read_bytes()
        if len(data) != m.size_bytes or hashlib.sha256(data).hexdigest() != m.sha256:
            raise ValueError(f"{model.name} does not match its manifest {path.name}")


def ota_worker(daemon: Any) -> OtaWorker:
    """The OTA worker for a :class:`firmware.daemon.Daemon` (built when ``[ota] enabled``)."""
    from firmware.daemon import VERSION

    settings = daemon.settings
    s: OtaSettings = settings.ota
    root = Path(s.root_dir) if s.root_dir else settings.unit.resolved_state_dir() / "ota"
    store = daemon.c.store

    def health() -> HealthSample:
        uplink = daemon.c.extra_workers.get("uplink")
        link_ok: bool | None = None
        if uplink is not None:
            link_ok = uplink.status().get("link", {}).get("state") == "up"
        return HealthSample(ready=daemon.ready, fps=daemon.heartbeat.fps(),
                            reads=daemon.c.counters.get("reads"), uplink_ok=link_ok)

    def alert_pending() -> bool:
        try:
            return int(store.outbox_depth().get("alerts", 0)) > 0
        except Exception:  # noqa: BLE001 - a sick store must not block updates forever
            return False

    return OtaWorker(
        s, root, settings.unit.camera_id, daemon.clock, health=health,
        request_restart=daemon.request_restart,
        audit=lambda a, r, res, d: store.audit("ota", "system", a, r, res, d),
        alert_pending=alert_pending, check_models=check_models, running_version=VERSION,
        whole_image=RaucHook() if s.whole_image == "rauc" else None)
