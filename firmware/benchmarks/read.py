"""`vigil bench read`: time to find and read the plate in a 1280x720 frame, one thread.

Frames are the committed held-out scenes in ``tests/data/detector`` (1280x720, one or two plates
each), decoded once beforehand: **decode is excluded**. One iteration = the detector on the whole
frame + cutting out the best-scoring plate + OCR of that crop, which is the work a
frame with one plate costs the pipeline. ``observe_ms_median`` is the full
:meth:`PlateEngine.observe` (every plate found read) for comparison, and
``still_observe_ms_median`` the same with the engine ``vigil read`` uses on still photos (plate
map on a second thread, text fallback, windows on large frames), which is what ``vigil read``
costs per 1280x720 photo once it is decoded.

``exact_read`` (and ``det_recall_50``) are ``vigil eval`` on the frozen real-scene test part, the
end-to-end accuracy these timings buy: the set is made by ``python -m training.realscenes.build``
into ``build/realscenes/test`` (or named by ``VIGIL_EVAL_TEST``); without it they are ``null``.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from firmware.benchmarks.common import envelope
from inference.detector import PlateDetector
from inference.engine import DEFAULT_MODEL_DIR, SMALL_READER_MODEL, PlateEngine, plate_crop
from inference.ocr import PlateReader

FRAMES_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "detector"
TEST_SET = Path(__file__).resolve().parents[2] / "build" / "realscenes" / "test"


def load_frames() -> list[np.ndarray]:
    frames = []
    for p in sorted(FRAMES_DIR.glob("*.jpg")):
        bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if bgr is not None and bgr.shape[:2] == (720, 1280):
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    if not frames:
        raise RuntimeError(f"no 1280x720 frames in {FRAMES_DIR}")
    return frames


def _pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p * len(s)))]


def measure(
    detector_dir: Path, ocr_dir: Path, frames: list[np.ndarray], n: int, threads: int = 1
) -> dict[str, Any]:
    """Detector, OCR and detect+read timings in ms over ``n`` frames (cycled)."""
    det = PlateDetector.load(detector_dir, threads)
    reader = PlateReader.load(ocr_dir, threads)
    try:
        for f in frames:  # warm-up: the first invokes allocate and pack weights
            found = [d for d in det.detect(f) if d.label == "plate"]
            if found:
                reader.read(plate_crop(f, found[0]))
        t_det: list[float] = []
        t_ocr: list[float] = []
        t_all: list[float] = []
        for i in range(n):
            f = frames[i % len(frames)]
            t0 = time.perf_counter()
            plates = [d for d in det.detect(f) if d.label == "plate"]
            t1 = time.perf_counter()
            if plates:
                reader.read(plate_crop(f, plates[0]))
            t2 = time.perf_counter()
            t_det.append((t1 - t0) * 1000)
            if plates:
                t_ocr.append((t2 - t1) * 1000)
            t_all.append((t2 - t0) * 1000)
    finally:
        det.close()
        reader.close()
    return {
        "median_ms": round(statistics.median(t_all), 2),
        "p95_ms": round(_pct(t_all, 0.95), 2),
        "detector_ms_median": round(statistics.median(t_det), 2),
        "ocr_ms_median": round(statistics.median(t_ocr), 2) if t_ocr else None,
        "frames_without_plate": n - len(t_ocr),
    }


def observe_median(
    model_dir: Path, frames: list[np.ndarray], n: int, threads: int, still: bool = False
) -> float:
    loaded = (
        PlateEngine.load_still(model_dir, threads)
        if still
        else PlateEngine.load(model_dir, threads=threads)
    )
    with loaded as engine:
        for f in frames:
            engine.observe(f)
        ts = []
        for i in range(n):
            t0 = time.perf_counter()
            engine.observe(frames[i % len(frames)])
            ts.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(ts), 2)


def model_sizes(model_dir: Path) -> dict[str, int]:
    """The plate models' file sizes: the detector and the reader, and the still photos' small-plate
    reader where the folder holds one (``engine.SMALL_READER_MODEL``)."""
    names = ["detector", "ocr"]
    if (model_dir / f"{SMALL_READER_MODEL}.tflite").exists():
        names.append(SMALL_READER_MODEL)
    sizes = {name: (model_dir / f"{name}.tflite").stat().st_size for name in names}
    return {**sizes, "total": sum(sizes.values())}


def accuracy(model_dir: Path) -> dict[str, Any]:
    """End-to-end figures on the frozen real-scene test part, or nulls when it is not built."""
    from inference.eval_cli import evaluate_folder
    from inference.evaluation import report

    folder = Path(os.environ.get("VIGIL_EVAL_TEST") or TEST_SET)
    if not (folder / "labels.jsonl").is_file():
        return {"exact_read": None, "det_recall_50": None,
                "eval_set": f"{folder} not built (python -m training.realscenes.build)"}
    with PlateEngine.load(model_dir, threads=1) as engine:
        ev, _ = evaluate_folder(folder, engine, progress=False)
    rep = report(ev)
    return {"exact_read": rep["exact_read"], "det_recall_50": rep["det_recall_50"],
            "eval_set": str(folder), "eval_plates_readable": rep["readable"]}


def run(quick: bool = False) -> dict[str, Any]:
    n = 20 if quick else 200
    frames = load_frames()
    figures = measure(DEFAULT_MODEL_DIR, DEFAULT_MODEL_DIR, frames, n, threads=1)
    figures["observe_ms_median"] = observe_median(DEFAULT_MODEL_DIR, frames, max(8, n // 4), 1)
    figures["still_observe_ms_median"] = observe_median(
        DEFAULT_MODEL_DIR, frames, max(8, n // 4), 1, still=True
    )
    figures.update(accuracy(DEFAULT_MODEL_DIR))
    figures.update(
        {
            "iterations": n,
            "threads": 1,
            "frame": "1280x720 RGB, decode excluded",
            "model_sizes_bytes": model_sizes(DEFAULT_MODEL_DIR),
        }
    )
    return envelope("read", figures)
