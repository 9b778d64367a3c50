"""Where the daemon meets :mod:`ota`: the ``[ota]`` section (keys on ``ota.settings``) and the
worker's wiring.

``ota`` does not import ``firmware`` (imports flow one way), so the facts its health gate needs
(READY, frame rate, reads, uplink state), the model check (the existing manifest loader), the
audit sink and the restart request are handed to it here as plain callables and records.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers.config_keys import Section
from firmware.link.state import LinkState
from firmware.version import VERSION
from ota.settings import OtaSettings, UnitOta

if TYPE_CHECKING:
    from ota.worker import OtaWorker


def _check(s: OtaSettings) -> str | None:
    if s.enabled and not (s.repository and s.trusted_root):
        return "[ota] enabled needs repository and trusted_root"
    return None


OTA_SECTION = Section.of(
    OtaSettings, doc="Signed over-the-air updates (TUF metadata, A/B slots, health-gated commit).",
    check=_check)


def check_models(model_dir: Path) -> None:
    """A staged model directory must load with the manifest loader, file sizes and hashes."""
    import hashlib

    from inference.manifest import ModelManifest

    manifests = sorted(model_dir.glob("*.json"))
    if not manifests:
        raise ValueError(f"no model manifests in {model_dir}")
    loaded: dict[str, ModelManifest] = {}
    for path in manifests:
        m = ModelManifest.load(path)
        model = model_dir / m.file
        data = model.read_bytes()
        if len(data) != m.size_bytes or hashlib.sha256(data).hexdigest() != m.sha256:
            raise ValueError(f"{model.name} does not match its manifest {path.name}")
        loaded[m.name] = m
    # A model made from another (the detector's window model) must come with that very one: the
    # daemon would refuse the pair at start and the update would only roll back then.
    for m in loaded.values():
        same = m.labels.get("same_weights_as")
        if isinstance(same, dict):
            base = loaded.get(str(same.get("model")))
            if base is None or base.sha256 != same.get("sha256"):
                raise ValueError(
                    f"{m.name} was made from {same.get('model')} {str(same.get('sha256'))[:12]}..."
                    " which this model directory does not hold"
                )


def ota_root(settings: Any) -> Path:
    """The OTA root of a :class:`firmware.config.Settings`."""
    s: OtaSettings = settings.ota
    return Path(s.root_dir) if s.root_dir else Path(settings.unit.resolved_state_dir()) / "ota"


def unit_ota(config_path: Path | None) -> UnitOta:
    """The unit's ``[ota]`` for ``vigil ota install-usb`` (``--config``, else as ``vigil run``)."""
    from firmware import config
    from firmware.errors import ConfigError
    from ota.errors import OtaError

    try:
        settings = config.resolve(config_path)
    except ConfigError as e:
        raise OtaError(str(e)) from e
    return UnitOta(settings.ota, ota_root(settings), settings.unit.camera_id)


def ota_worker(daemon: Any) -> OtaWorker:
    """The OTA worker for a :class:`firmware.app.daemon.Daemon` (built when ``[ota] enabled``)."""
    # Here, not at the top: the config schema imports this module, and python-tuf with its
    # signer backends costs about 8 MB of resident memory a unit without OTA must not pay.
    from firmware.uplink.worker import Uplink
    from ota.whole_image import RaucHook
    from ota.worker import HealthSample, OtaWorker

    settings = daemon.settings
    s: OtaSettings = settings.ota
    root = ota_root(settings)
    store = daemon.c.store

    def health() -> HealthSample:
        uplink = daemon.c.extra_workers.get("uplink")
        link_ok: bool | None = None
        if isinstance(uplink, Uplink):
            link_ok = uplink.link_state is LinkState.UP
        return HealthSample(ready=daemon.ready, fps=daemon.heartbeat.fps(),
                            reads=daemon.c.counters.get("reads"), uplink_ok=link_ok)

    def alert_pending() -> bool:
        try:
            return int(store.outbox_depth().get("alerts", 0)) > 0
        except Exception:  # noqa: BLE001 - a sick store must not block updates forever
            return False

    uplink = daemon.c.extra_workers.get("uplink")
    worker = OtaWorker(
        s, root, settings.unit.camera_id, daemon.clock, health=health,
        request_restart=daemon.request_restart,
        audit=lambda a, r, res, d: store.audit("ota", "system", a, r, res, d),
        alert_pending=alert_pending, check_models=check_models, running_version=VERSION,
        whole_image=RaucHook() if s.whole_image == "rauc" else None,
        on_change=uplink.notify if isinstance(uplink, Uplink) else None)
    if isinstance(uplink, Uplink):  # every OTA step goes upstream (POST /v1/status)
        uplink.add_status("ota", worker)
    return worker
