"""`vigil bench pipeline`: how many 1280x720 frames a second the whole frame loop sustains.

The simulation rig's own components (``wiring.build_components``: replay camera with its decoder,
motion gate, detector, OCR, tracker, vote, the encrypted store in a temporary folder) with the
replay unpaced (``realtime = false``) and not looping, so frames arrive as fast as the pipeline
takes them. Timed from the first frame read to the end of the footage, repeated ``passes`` times
over the bundled sample footage (1280x720, 257 frames, six vehicles).

``fps_720p`` is frames through the pipeline per second; ``detect_fps`` counts only the frames the
motion gate sent to the detector. ``cpu_share`` is the process's CPU time (every thread: decoder,
inference, store writer) over wall time times the CPU count: 1.0 would be every core busy.
"""

from __future__ import annotations

import os
import resource
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from firmware.benchmarks.common import envelope


class _EndWatch:
    """The camera, with the moment the footage ran out recorded."""

    def __init__(self, camera: Any) -> None:
        self._camera = camera
        self.first_frame_s: float | None = None
        self.ended = threading.Event()

    def read(self, timeout_s: float) -> Any:
        from drivers.camera import CameraEndOfStream

        try:
            frame = self._camera.read(timeout_s)
        except CameraEndOfStream:
            self.ended.set()
            raise
        if self.first_frame_s is None:
            self.first_frame_s = time.monotonic()
        return frame

    def __getattr__(self, name: str) -> Any:
        return getattr(self._camera, name)


class _Heartbeat:
    def beat(self) -> None:
        pass


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def one_pass(state_dir: Path) -> dict[str, float]:
    from drivers.clock import SystemClock
    from firmware import config
    from firmware.app.wiring import build_components
    from firmware.pipeline.frame_loop import Pipeline

    s = config.simulation_defaults()
    s = config.replace(s, "camera", loop=False, realtime=False)
    s = config.replace(s, "logging", reads_stdout=False)
    s = config.replace(s, "store", path=str(state_dir / "store.db"))
    s = config.replace(s, "keys", kek_file=str(state_dir / "kek"))
    c = build_components(s, SystemClock())
    parts = c.pipeline_parts
    assert parts is not None  # build_components always sets them
    watch = _EndWatch(parts.camera)
    parts.camera = watch
    pipeline = Pipeline.from_components(c, _Heartbeat())
    stop = threading.Event()
    worker = threading.Thread(target=pipeline.run, args=(stop,), name="bench-pipeline")
    cpu0 = _cpu_s()
    worker.start()
    try:
        if not watch.ended.wait(timeout=600):
            raise RuntimeError("the footage did not end within 600 s")
        end = time.monotonic()
        cpu = _cpu_s() - cpu0
    finally:
        stop.set()
        worker.join(timeout=30)
        c.close()
    wall = end - (watch.first_frame_s or end)
    frames = c.counters.get("frames")
    return {
        "threads": s.inference.threads,
        "wall_s": wall,
        "cpu_s": cpu,
        "frames": frames,
        "frames_detected": c.counters.get("frames_detected"),
        "reads": c.counters.get("reads"),
    }


def run(quick: bool = False) -> dict[str, Any]:
    passes = 1 if quick else 3
    results = []
    for _ in range(passes):
        with tempfile.TemporaryDirectory(prefix="vigil-bench-pipeline-") as tmp:
            results.append(one_pass(Path(tmp)))
    wall = sum(r["wall_s"] for r in results)
    frames = sum(r["frames"] for r in results)
    cpus = os.cpu_count() or 1
    return envelope(
        "pipeline",
        {
            "fps_720p": round(frames / wall, 1),
            "detect_fps": round(sum(r["frames_detected"] for r in results) / wall, 1),
            "cpu_share": round(sum(r["cpu_s"] for r in results) / (wall * cpus), 2),
            "frames": frames,
            "frames_detected": sum(r["frames_detected"] for r in results),
            "reads_per_pass": [r["reads"] for r in results],
            "passes": passes,
            "footage": "firmware/sample/footage.avi (1280x720, 257 frames)",
            "threads": results[0]["threads"],  # interpreter threads per model ([inference])
        },
    )
