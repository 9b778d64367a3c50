"""The wiring: every component built from validated settings, here and nowhere else.

Two phases, both in this module. :func:`build_components` runs before the self-test: the store,
the models, the camera, the devices and the agency links. :func:`build_workers` runs after it:
the pipeline, the control socket, the technician console and the OTA worker, which need the
daemon's status and restart hooks (:class:`DaemonHost`). Tests pass keyword overrides (a fake
camera, an in-memory key source, a fake clock) instead of patching globals. Start-up order is the
order of these functions; shutdown is the reverse, in :meth:`Components.close`.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from drivers.camera import Camera, Frame, open_camera
from drivers.clock import Clock, SystemClock
from drivers.errors import DriverError
from drivers.gps import LocationSource, open_location
from drivers.illuminator import Illuminator, make_pin_factory
from drivers.modem import open_modem, power_switch_for
from firmware import config
from firmware.app.health import Counters, Heartbeat
from firmware.app.logsetup import RECENT
from firmware.app.status import DaemonStatus
from firmware.console.control import ControlServer, Handler
from firmware.console.serial_console import Console, serial_factory
from firmware.link.hotlists import HotlistUpdater
from firmware.link.modem_supervisor import ModemSupervisor
from firmware.link.state import LinkStateMachine
from firmware.link.timesync import TimeSync, TimeSyncStatus
from firmware.pipeline.daynight import IlluminationController
from firmware.pipeline.frame_loop import Engine, LocationFix, Matcher, Pipeline, PipelineParts
from firmware.uplink.transport import HttpsTransport
from firmware.uplink.worker import Uplink
from inference.passes import VotedRead
from inference.privacy import overview_crop
from inference.records import Box
from inference.tracker import PlateTrack, Tracker, TrackerSettings
from inference.vote import Deduplicator, vote_track
from storage.store import Store
from storage.tpm import key_source_for

log = logging.getLogger(__name__)


class Worker(Protocol):
    """A supervised worker: ``run`` until ``stop`` is set (optionally also ``status()``)."""

    def run(self, stop: threading.Event) -> None: ...


class Closable(Protocol):
    def close(self) -> None: ...


def open_store(settings: config.Settings, clock: Clock | None = None) -> Store:
    """Open the encrypted store named by the config (also used by the CLI's audit/stats)."""
    path = Path(settings.store.path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # The TPM where the unit has one, else the 0600 key file (storage/tpm.py says which, why).
    keys = settings.keys
    return Store.open(path, key_source_for(Path(keys.kek_file), keys.tpm_tcti or None,
                                           keys.source),
                      settings.store, clock or SystemClock())


@dataclass
class Components:
    """Everything the daemon runs, built in one place so tests can swap parts for fakes."""

    settings: config.Settings
    clock: Clock
    camera: Camera
    engine: Engine
    store: Store
    counters: Counters = field(default_factory=Counters)
    # Non-essential workers by name: each has run(stop_event) and, optionally, status().
    extra_workers: dict[str, Worker] = field(default_factory=dict)
    pipeline_parts: PipelineParts | None = None
    illumination: IlluminationController | None = None
    closables: list[Closable] = field(default_factory=list)
    faults: dict[str, str] = field(default_factory=dict)  # parts that failed at start

    def close(self) -> None:
        parts: tuple[Closable, ...] = (self.camera, self.engine, *reversed(self.closables),
                                       self.store)
        for part in parts:
            try:
                part.close()
            except Exception:  # closing must go on for the rest
                log.exception("close failed", extra={"part": type(part).__name__})


class PassVoter:
    """One read per pass: the vote over a finished track, then duplicate suppression."""

    def __init__(self, settings: TrackerSettings) -> None:
        self.settings = settings
        self.dedup = Deduplicator(settings.dedup_window_s, settings.dedup_max_edits)

    def vote(self, track: PlateTrack) -> VotedRead | None:
        voted = vote_track(track, self.settings)
        return voted if self.dedup.admit(voted) else None


class StdoutSink:
    """Prints each acknowledged read as one JSON line (the simulation rig's visible output)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._lock = threading.Lock()

    def __call__(self, line: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self._lock:
            sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
            sys.stdout.flush()


def location_fn(source: LocationSource) -> Callable[[], LocationFix]:
    """Adapts a drivers.gps LocationSource to what a read records."""

    def current() -> LocationFix:
        loc = source.location()
        return LocationFix(loc.latitude, loc.longitude, loc.source)

    return current


def overview(frame: np.ndarray | None, vehicle_box: Box | None,
             plate_box: Box) -> np.ndarray | None:
    """The privacy-cut overview image: nothing above the bonnet line is ever kept."""
    if frame is None:
        return None
    crop = overview_crop(frame, vehicle_box, plate_box)
    return crop if crop.size else None


class _TimeSyncWorker:
    def __init__(self, timesync: TimeSync) -> None:
        self.timesync = timesync

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            stop.wait(self.timesync.step())

    def status(self) -> TimeSyncStatus:
        return self.timesync.report()


class Links:
    """The agency side: clock judge, link state, uplink, modem supervisor, hotlists."""

    def __init__(self, timesync: TimeSync) -> None:
        self.timesync = timesync
        self.uplink: Uplink | None = None
        self.hotlists: HotlistUpdater | None = None

    def matcher(self) -> Matcher | None:
        return self.hotlists.matcher if self.hotlists is not None else None

    def health_detail(self, uplink_detail: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        """The retained MQTT health message's fields: the uplink's (``uplink_detail`` of its
        status), and each hotlist's freshness, so the agency sees a stale, expired or refused
        list on its dashboard (docs/hotlists.md, Freshness)."""
        out = uplink_detail(self.uplink.status()) if self.uplink is not None else {}
        if self.hotlists is not None:
            st = self.hotlists.status()
            out["hotlists"] = {"freshness": dict(st.freshness),
                               "expires_at": dict(st.expires_at),
                               "stored_refused": list(st.stored_refused)}
        return out

    def on_alert(self, alerts: list[Any]) -> None:
        if self.uplink is not None:
            self.uplink.send_alert_now()


def _build_links(settings: config.Settings, clock: Clock, store: Store,
                 components: Components, pins: Callable[[], Any]) -> Links:
    timesync = TimeSync(clock)
    # Retention (and the day reads are keyed under) trusts only a synced clock that has not
    # just jumped (docs/storage.md, "Retention and the clock").
    def clock_trusted() -> bool:
        return timesync.is_synced() and "clock_jumped" not in timesync.read_flags()

    store.set_clock_trusted(clock_trusted)
    links = Links(timesync)
    components.extra_workers["timesync"] = _TimeSyncWorker(timesync)
    link = LinkStateMachine(clock)
    if settings.uplink.sends:
        session = (_mqtt_session(settings, clock, components, links)
                   if settings.uplink.protocol == "mqtt" else None)
        uplink = Uplink(settings.uplink, store, link, clock, clock_synced=timesync.is_synced,
                        transport=session, alert_transport=session)
        links.uplink = uplink
        components.closables.append(uplink)
        components.extra_workers["uplink"] = uplink
    else:
        log.info("no [uplink] endpoint or broker: reads queue in the store's outbox")
    if settings.modem.enabled:
        ms = settings.modem
        components.extra_workers["modem"] = ModemSupervisor(
            open_modem(ms, clock), link, ms, clock, power_switch_for(ms, clock, pins))
    if settings.hotlists.agency_public_key:
        transport = HttpsTransport(settings.uplink, clock) if settings.uplink.endpoint else None
        updater = HotlistUpdater(
            settings.hotlists, transport, store.derive_key("hotlist"), clock,
            audit=lambda a, r, res, d: store.audit("hotlists", "system", a, r, res, dict(d)),
            floors=store.version_floors(), build_in_child=True, clock_trusted=clock_trusted,
        )
        updater.load()  # the stored, re-verified lists: matching works offline from the start
        links.hotlists = updater
        components.extra_workers["hotlists"] = updater
    return links


def _mqtt_session(settings: config.Settings, clock: Clock, components: Components,
                  links: Links) -> Any:
    """The MQTT session (``[uplink] protocol = "mqtt"``), a worker of its own; nudges on its
    subscribed topics start the usual signed fetches (hotlist poll, OTA check)."""
    # Imported only here: the module imports paho, which a unit on HTTPS never loads.
    from firmware.uplink.mqtt import MqttTransport, health_detail
    from firmware.uplink.nudges import NudgeScheduler

    def poll_hotlists() -> None:
        if links.hotlists is not None:
            links.hotlists.poll_now()

    def check_update() -> None:
        check = getattr(components.extra_workers.get("ota"), "check_now", None)
        if check is None:
            log.info("update nudge ignored: [ota] is not enabled")
        else:
            check()

    nudges = NudgeScheduler({"hotlists": poll_hotlists, "ota": check_update},
                            settings.uplink.mqtt_nudge_jitter_s)
    session = MqttTransport(
        settings.uplink, clock, on_nudge=nudges,
        health=lambda: links.health_detail(health_detail))
    components.closables.append(nudges)
    components.extra_workers["mqtt"] = session
    return session


def load_engine(settings: config.Settings) -> Engine:
    from inference.engine import PlateEngine  # the TFLite runtime: loaded only to read plates

    inf = settings.inference
    return PlateEngine.load(Path(inf.model_dir) if inf.model_dir else None,
                            threads=inf.threads, top_n=inf.top_n, country=inf.country)


def _illumination(settings: config.Settings, clock: Clock, components: Components,
                  override: Illuminator | None,
                  pins: Callable[[], Any]) -> Callable[[Frame], object] | None:
    """The day/night controller, or ``None`` (disabled, or GPIO unavailable: degraded)."""
    if not settings.illuminator.enabled:
        return None
    try:
        ill = override or Illuminator(settings.illuminator, pins(), clock)
    except DriverError as e:
        # Plates are still readable by day without IR: run degraded rather than not at all.
        log.error("illuminator unavailable: running without IR control", extra={"error": str(e)})
        components.faults["illuminator"] = str(e)
        return None
    components.closables.append(ill)
    controller = IlluminationController(ill, clock, settings.illuminator)
    components.illumination = controller
    return controller.observe_frame


def build_components(settings: config.Settings, clock: Clock, **overrides: Any) -> Components:
    """Phase one: every component from config, any of them replaceable by keyword."""
    store = overrides.pop("store", None) or open_store(settings, clock)
    try:
        engine = overrides.pop("engine", None) or load_engine(settings)
        camera = overrides.pop("camera", None) or open_camera(settings.camera, clock)
    except Exception:
        store.close()
        raise
    components = Components(settings=settings, clock=clock, camera=camera, engine=engine,
                            store=store)
    location_source = overrides.pop("location_source", None) or open_location(settings.gps, clock)
    components.closables.append(location_source)
    # One gpiozero pin factory for every GPIO user, opened on first use and passed explicitly
    # (never gpiozero's global); its kind is [illuminator] pin_factory.
    pins = functools.cache(lambda: make_pin_factory(settings.illuminator.pin_factory))
    on_frame = _illumination(settings, clock, components, overrides.pop("illuminator", None),
                             pins)
    links = _build_links(settings, clock, store, components, pins)
    components.pipeline_parts = PipelineParts(
        camera=camera,
        engine=engine,
        # The daemon counts vehicles with no plate but pictures none: no frames for them.
        make_tracker=lambda: Tracker(settings.tracker, vehicle_frames=False),
        make_voter=lambda: PassVoter(settings.tracker),
        store=store,
        clock=clock,
        camera_id=settings.unit.camera_id,
        location=location_fn(location_source),
        clock_synced=overrides.pop("clock_synced", None) or links.timesync.is_synced,
        clock_stamp=overrides.pop("clock_stamp", None) or links.timesync.read_stamp,
        matcher=overrides.pop("matcher", None) or links.matcher,
        on_alert=links.on_alert,
        overview=overview,
        emit=overrides.pop("emit", None) or StdoutSink(settings.logging.reads_stdout),
        on_frame=on_frame,
    )
    if overrides:
        raise TypeError(f"unknown component overrides: {sorted(overrides)}")
    return components


class DaemonHost(Protocol):
    """What the phase-two workers need of the running daemon (``firmware.app.daemon.Daemon``)."""

    settings: config.Settings
    heartbeat: Heartbeat

    def status(self) -> DaemonStatus: ...

    def control_handlers(self) -> dict[str, Handler]: ...


@dataclass
class Workers:
    """The phase-two workers; the console and OTA worker join ``Components.extra_workers``."""

    pipeline: Pipeline
    control: ControlServer


def build_workers(c: Components, host: DaemonHost) -> Workers:
    """Phase two, after the self-test: the workers that report or act on the daemon itself."""
    workers = Workers(Pipeline.from_components(c, host.heartbeat),
                      ControlServer(Path(c.settings.status.socket), host.control_handlers()))
    if c.settings.console.enabled:
        c.extra_workers["console"] = Console(
            c.settings.console, serial_factory(c.settings.console), c.store,
            lambda: host.status().as_dict(), c.clock, logs_fn=RECENT.last,
            state_dir=c.settings.unit.resolved_state_dir())
    if c.settings.ota.enabled:
        # Imported only when enabled: python-tuf and its signer backends cost about 8 MB of
        # resident memory, which a unit without OTA must not pay (docs/benchmarks.md).
        from firmware.app.ota_glue import ota_worker

        c.extra_workers["ota"] = ota_worker(host)
    return workers
