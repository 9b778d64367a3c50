"""The pipeline with real tracker, vote and encrypted store, and a scripted detector/reader.

The scripted engine stands in for the models only here, to test the wiring between frames and
stored reads exactly; the simulation rig and the HIL tests use the real models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from drivers.clock import FakeClock
from firmware import config
from firmware.app.health import Counters, Heartbeat
from firmware.app.wiring import PassVoter
from firmware.pipeline.frame_loop import LocationFix, Pipeline, PipelineParts
from inference.records import Box, Candidate, Detection, FrameResult, OcrResult, PlateObservation
from inference.tracker import Tracker
from tests.kit import open_store
from tests.kit.people import INVESTIGATOR
from tests.kit.threads import run_until


@dataclass(frozen=True)
class _Frame:
    image: np.ndarray
    index: int
    monotonic_s: float


def _obs(text: str, x: float, w: float) -> PlateObservation:
    ocr = OcrResult(text=text, confidence=0.95, char_confidences=tuple(0.95 for _ in text),
                    candidates=(Candidate(text, 0.95),), region="us-ca")
    crop = np.full((32, 64, 3), 200, np.uint8)
    return PlateObservation(Detection(Box(x, 400, w, w / 2), 0.9), ocr, crop)


class ScriptedEngine:
    """Plate ``text`` at frames in ``script``: {frame_index: [(text, x, w), ...]}."""

    def __init__(self, script):
        self.script = script

    def observe(self, image, t):
        idx = int(round(t * 10))
        plates = tuple(_obs(*p) for p in self.script.get(idx, []))
        return FrameResult(frame_time_s=t, plates=plates)


class ListCamera:
    def __init__(self, n):
        self.n = n
        self.i = 0

    def start(self):
        pass

    def read(self, timeout_s):
        from drivers.camera import CameraTimeout

        if self.i >= self.n:
            raise CameraTimeout("end of script")
        rng = np.random.default_rng(self.i)  # every frame differs: the motion gate lets it pass
        f = _Frame(rng.integers(0, 255, (72, 128, 3), dtype=np.uint8), self.i, self.i / 10)
        self.i += 1
        return f


@pytest.fixture
def store(tmp_path):
    s = config.simulation_defaults()
    clock = FakeClock()
    st = open_store(tmp_path / "v.db", clock=clock, settings=s.store)
    yield st
    st.close()


def _pipeline(store, script, n_frames, emitted, **kw):
    settings = config.simulation_defaults()
    parts = PipelineParts(
        camera=ListCamera(n_frames), engine=ScriptedEngine(script),
        make_tracker=lambda: Tracker(settings.tracker),
        make_voter=lambda: PassVoter(settings.tracker), store=store, clock=FakeClock(),
        camera_id="t-1", location=lambda: LocationFix(1.0, 2.0, "site"),
        clock_synced=lambda: True, matcher=lambda: None,
        overview=lambda f, v, p: None, emit=emitted.append, **kw,
    )
    clock = FakeClock()
    return Pipeline(parts, settings, Heartbeat(clock), Counters())


def test_two_passes_give_two_stored_reads_one_each(store):
    script = {i: [("ABC1234", 100 + 20 * i, 80 + 5 * i)] for i in range(8)}
    script.update({i: [("XYZ987", 900 - 20 * (i - 40), 90)] for i in range(40, 47)})
    emitted: list = []
    p = _pipeline(store, script, 80, emitted)
    run_until(p.run, lambda: p.counters.get("frames") >= 80, timeout_s=10)
    assert [e["plate"] for e in emitted] == ["ABC1234", "XYZ987"]
    got = store.get_reads([e["read_id"] for e in emitted], INVESTIGATOR)
    assert sorted(r.plate_text for r in got) == ["ABC1234", "XYZ987"]
    assert all(r.camera_id == "t-1" and r.location_source == "site" for r in got)
    assert store.outbox_depth()["reads"] == 2


def test_open_track_is_drained_into_the_store_at_stop(store):
    script = {i: [("DRAIN1", 100 + 10 * i, 100)] for i in range(30)}
    emitted: list = []
    # camera ends while the plate is still in view; time sync says the clock just jumped
    p = _pipeline(store, script, 5, emitted,
                  clock_stamp=lambda: (("clock_jumped", "clock_offset"), 4.25))
    run_until(p.run, lambda: False, timeout_s=0.5)  # the camera's 5 frames, then stop
    assert [e["plate"] for e in emitted] == ["DRAIN1"]
    (r,) = store.get_reads([emitted[0]["read_id"]], INVESTIGATOR)
    assert r.clock_flags == ("clock_jumped", "clock_offset") and r.clock_offset_s == 4.25


class FlakyStore:
    def __init__(self, inner, failures):
        self.inner = inner
        self.failures = failures

    def put_read(self, read, alerts=()):
        if self.failures:
            self.failures -= 1
            raise OSError("disk I/O error")
        return self.inner.put_read(read, alerts)


def test_store_failure_keeps_the_read_until_it_is_written(store):
    script = {i: [("KEEP42", 100 + 10 * i, 100)] for i in range(4)}
    emitted: list = []
    p = _pipeline(FlakyStore(store, 3), script, 30, emitted)
    run_until(p.run, lambda: bool(emitted), timeout_s=10)
    assert [e["plate"] for e in emitted] == ["KEEP42"]
    assert p.counters.get("store_write_failures") == 3
    assert store.outbox_depth()["reads"] == 1
