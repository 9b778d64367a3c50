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


def site_location(settings: config.Settings) -> Callable[[], LocationFix]:
    u = settings.unit
    fix = (LocationFix(u.site_latitude, u.site_longitude, "site")
           if u.site_latitude is not None else LocationFix(None, None, "none"))
    return lambda: fix


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
    from inference.tracker import Tracker

    components.pipeline_parts = PipelineParts(
        camera=camera,
        engine=engine,
        make_tracker=lambda: Tracker(settings.tracker),
        make_voter=lambda: PassVoter(settings.tracker),
        store=store,
        clock=clock,
        camera_id=settings.unit.camera_id,
        location=overrides.pop("location", None) or site_location(settings),
        clock_synced=overrides.pop("clock_synced", None) or (lambda: True),
        matcher=overrides.pop("matcher", None) or (lambda: None),
        overview=overview,
        emit=overrides.pop("emit", None) or StdoutSink(settings.logging.reads_stdout),
    )
    if overrides:
        raise TypeError(f"unknown component overrides: {sorted(overrides)}")
    return components
