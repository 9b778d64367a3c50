"""Detect + read timings per 1280x720 frame, committed int8 models vs their float32 twins.

Run from the repository root: ``.venv/bin/python bench/read_bench.py [--n 200]``. The float32
detector is written by ``training.detector.export`` to ``training/work/detector/float`` (not
committed; re-create it with the training venv); a float OCR model is used when ``--float-ocr``
names a folder holding ``ocr.tflite`` + ``ocr.json``, else the int8 OCR model is used in both
rows. Prints one JSON object per configuration and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from firmware.benchmarks.common import machine
from firmware.benchmarks.read import load_frames, measure, model_sizes
from inference.engine import DEFAULT_MODEL_DIR

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--float-detector", type=Path, default=ROOT / "training/work/detector/float")
    ap.add_argument("--float-ocr", type=Path, default=None)
    a = ap.parse_args()
    frames = load_frames()
    rows = []
    sizes = model_sizes(DEFAULT_MODEL_DIR)
    r = measure(DEFAULT_MODEL_DIR, DEFAULT_MODEL_DIR, frames, a.n, a.threads)
    rows.append(("int8 detector + int8 OCR", sizes["detector"], r))
    if (a.float_detector / "detector.json").exists():
        ocr_dir = a.float_ocr if a.float_ocr is not None else DEFAULT_MODEL_DIR
        r = measure(a.float_detector, ocr_dir, frames, a.n, a.threads)
        label = "float32 detector + " + ("float32" if a.float_ocr else "int8") + " OCR"
        rows.append((label, (a.float_detector / "detector.tflite").stat().st_size, r))
    for label, size, r in rows:
        print(json.dumps({"config": label, "detector_bytes": size, **r}))
    print(json.dumps({"machine": machine(), "frames": len(frames), "n": a.n,
                      "threads": a.threads}))
    print("\n| models | detector bytes | median ms | p95 ms | detector ms | OCR ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, size, r in rows:
        print(f"| {label} | {size:,} | {r['median_ms']} | {r['p95_ms']} | "
              f"{r['detector_ms_median']} | {r['ocr_ms_median']} |")


if __name__ == "__main__":
    main()
