"""The one wiring function: every component built from validated settings.

Tests pass keyword overrides (a fake camera, an in-memory key source, a fake clock) instead of
patching globals. Start-up order is the order of this function; shutdown is the reverse, in
:meth:`firmware.daemon.Components.close`.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from drivers.clock import Clock
from firmware import config
from firmware.pipeline import LocationFix, PipelineParts

log = logging.getLogger(__name__)


class PassVoter:
    """One read per pass: the vote over a finished track, then duplicate suppression."""

    def __init__(self, settings: Any) -> None:
        from inference.vote import Deduplicator

        self.settings = settings
        self.dedup = Deduplicator(settings.dedup_window_s, settings.dedup_max_edits)

    def vote(self, track: Any) -> Any | None:
        from inference.vote import vote_track

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


def location_fn(source: Any) -> Callable[[], LocationFix]:
    """Adapts a drivers.gps LocationSource to what a read records."""

    def current() -> LocationFix:
        loc = source.location()
        return LocationFix(loc.latitude, loc.longitude, loc.source)

    return current


def overview(frame: np.ndarray | None, vehicle_box: Any, plate_box: Any) -> np.ndarray | None:
    """The privacy-cut overview image: nothing above the bonnet line is ever kept."""
    from inference.privacy import overview_crop

    if frame is None:
        return None
    crop = overview_crop(frame, vehicle_box, plate_box)
    return crop if crop.size else None


class _TimeSyncWorker:
    def __init__(self, timesync: Any) -> None:
        self.timesync = timesync

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            stop.wait(self.timesync.step())

    def status(self) -> dict[str, Any]:
        return dict(self.timesync.status_dict())


class Links:
    """The agency side: clock judge, link state, uplink, modem supervisor, hotlists."""

    def __init__(self, timesync: Any) -> None:
        self.timesync = timesync
        self.uplink: Any = None
        self.hotlists: Any = None

    def matcher(self) -> Any | None:
        return self.hotlists.matcher if self.hotlists is not None else None

    def on_alert(self, alerts: list[Any]) -> None:
        if self.uplink is not None:
            self.uplink.send_alert_now()


def _build_links(settings: config.Settings, clock: Clock, store: Any, components: Any) -> Links:
    from firmware.link_state import LinkStateMachine
    from firmware.timesync import TimeSync

    timesync = TimeSync(clock)
    links = Links(timesync)
    ts_worker = _TimeSyncWorker(timesync)
    components.extra_workers["timesync"] = ts_worker
    link = LinkStateMachine(clock)
    if settings.uplink.endpoint:
        from firmware.uplink import Uplink

        uplink = Uplink(settings.uplink, store, link, clock, clock_synced=timesync.is_synced)
        links.uplink = uplink
        components.closables.append(uplink)
        components.extra_workers["uplink"] = uplink
    else:
        log.info("no [uplink] endpoint: reads queue in the store's outbox")
    if settings.modem.enabled:
        from drivers.modem import ModemSupervisor, open_modem, power_switch_for

        ms = settings.modem
        modem = ModemSupervisor(open_modem(ms, clock), link, ms, clock,
                                power_switch_for(ms, clock))
        components.extra_workers["modem"] = modem
    if settings.hotlists.agency_public_key:
        from firmware.hotlists import HotlistUpdater
        from firmware.uplink import HttpsTransport

        transport = HttpsTransport(settings.uplink, clock) if settings.uplink.endpoint else None
        updater = HotlistUpdater(
            settings.hotlists, transport, store.derive_key("hotlist"), clock,
            audit=lambda a, r, res, d: store.audit("hotlists", "system", a, r, res, dict(d)),
        )
        updater.load()  # the stored, re-verified lists: matching works offline from the start
        links.hotlists = updater
        components.extra_workers["hotlists"] = updater
    return links


def load_engine(settings: config.Settings) -> Any:
    from inference.engine import PlateEngine

    inf = settings.inference
    return PlateEngine.load(Path(inf.model_dir) if inf.model_dir else None,
                            threads=inf.threads, top_n=inf.top_n, country=inf.country)


def build_components(settings: config.Settings, clock: Clock, **overrides: Any) -> Any:
    from drivers.camera import open_camera
    from firmware.daemon import Components, open_store

    store = overrides.pop("store", None) or open_store(settings, clock)
    try:
        engine = overrides.pop("engine", None) or load_engine(settings)
        camera = overrides.pop("camera", None) or open_camera(settings.camera, clock)
    except Exception:
        store.close()
        raise
    components = Components(settings=settings, clock=clock, camera=camera, engine=engine,
                            store=store)
    from drivers.gps import open_location
    from inference.tracker import Tracker

    location_source = overrides.pop("location_source", None) or open_location(settings.gps, clock)
    components.closables.append(location_source)
    on_frame = None
    if settings.illuminator.enabled:
        from drivers.errors import DriverError
        from drivers.illuminator import Illuminator, make_pin_factory
        from firmware.illumination import IlluminationController

        try:
            ill = overrides.pop("illuminator", None) or Illuminator(
                settings.illuminator, make_pin_factory(settings.illuminator.pin_factory), clock)
        except DriverError as e:
            # Plates are still readable by day without IR: run degraded rather than not at all.
            log.error("illuminator unavailable: running without IR control",
                      extra={"error": str(e)})
            components.faults["illuminator"] = str(e)
        else:
            components.closables.append(ill)
            controller = IlluminationController(ill, clock, settings.illuminator)
            components.illumination = controller
            on_frame = controller.observe_frame

    links = _build_links(settings, clock, store, components)
    components.pipeline_parts = PipelineParts(
        camera=camera,
        engine=engine,
        make_tracker=lambda: Tracker(settings.tracker),
        make_voter=lambda: PassVoter(settings.tracker),
        store=store,
        clock=clock,
        camera_id=settings.unit.camera_id,
        location=location_fn(location_source),
        clock_synced=overrides.pop("clock_synced", None) or links.timesync.is_synced,
        matcher=overrides.pop("matcher", None) or links.matcher,
        on_alert=links.on_alert,
        overview=overview,
        emit=overrides.pop("emit", None) or StdoutSink(settings.logging.reads_stdout),
        on_frame=on_frame,
    )
    if overrides:
        raise TypeError(f"unknown component overrides: {sorted(overrides)}")
    return components
