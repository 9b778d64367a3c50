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
        from drivers.illuminator import Illuminator, make_pin_factory
        from firmware.illumination import IlluminationController

        ill = overrides.pop("illuminator", None) or Illuminator(
            settings.illuminator, make_pin_factory(settings.illuminator.pin_factory), clock)
        components.closables.append(ill)
        controller = IlluminationController(ill, clock, settings.illuminator)
        components.illumination = controller
        on_frame = controller.observe_frame

    components.pipeline_parts = PipelineParts(
        camera=camera,
        engine=engine,
        make_tracker=lambda: Tracker(settings.tracker),
        make_voter=lambda: PassVoter(settings.tracker),
        store=store,
        clock=clock,
        camera_id=settings.unit.camera_id,
        location=location_fn(location_source),
        clock_synced=overrides.pop("clock_synced", None) or (lambda: True),
        matcher=overrides.pop("matcher", None) or (lambda: None),
        overview=overview,
        emit=overrides.pop("emit", None) or StdoutSink(settings.logging.reads_stdout),
        on_frame=on_frame,
    )
    if overrides:
        raise TypeError(f"unknown component overrides: {sorted(overrides)}")
    return components
