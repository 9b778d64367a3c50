"""Time the plate reader on one thread: preprocess, model, decode, whole read.

Run: ``.venv/bin/python bench/ocr_bench.py [--n 500] [--threads 1] [--model-dir DIR]`` from the
repository root. Uses the committed crops in ``tests/data/ocr`` (cycled), so it needs no data set.
``--model-dir`` times another build of the reader (for example the float32 twin that
``training.recognizer.export --float --out DIR`` writes) against the committed one.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inference.ocr import PlateReader, decode, preprocess  # noqa: E402


def _pct(xs: list[float], p: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--top-n", type=int, default=10)
    ap.add_argument("--model-dir", type=Path, default=ROOT / "inference/models")
    a = ap.parse_args()
    crops = []
    for p in sorted((ROOT / "tests/data/ocr").glob("*.jpg")):
        bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
        crops.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    if not crops:
        raise SystemExit("no crops in tests/data/ocr")
    reader = PlateReader.load(a.model_dir, threads=a.threads, top_n=a.top_n)
    model = reader._model  # timing the stages separately needs the model itself
    h, w = reader.input_hw
    for c in crops:  # warm-up
        reader.read(c)
    t_pre, t_run, t_dec, t_all = [], [], [], []
    for i in range(a.n):
        c = crops[i % len(crops)]
        t0 = time.perf_counter()
        x = preprocess(c, h, w, reader.labels.min_width)
        t1 = time.perf_counter()
        out = model.run(x)
        t2 = time.perf_counter()
        decode(
            out["chars"].reshape(-1, len(reader.labels.alphabet)),
            reader.labels,
            a.top_n,
            reader.partial_threshold,
            out["region"].reshape(-1),
        )
        t3 = time.perf_counter()
        reader.read(c)
        t4 = time.perf_counter()
        t_pre.append(t1 - t0)
        t_run.append(t2 - t1)
        t_dec.append(t3 - t2)
        t_all.append(t4 - t3)
    reader.close()
    print(
        f"machine: {platform.machine()}, {platform.python_version()}, threads={a.threads}, "
        f"n={a.n}, top_n={a.top_n}, model {model.path} ({model.path.stat().st_size} bytes)"
    )
    print("| stage | median ms | p95 ms |")
    print("|---|---:|---:|")
    for name, xs in (
        ("preprocess", t_pre),
        ("model", t_run),
        ("CTC beam decode + top-N", t_dec),
        ("read() total", t_all),
    ):
        ms = [x * 1000 for x in xs]
        print(f"| {name} | {statistics.median(ms):.3f} | {_pct(ms, 0.95):.3f} |")


if __name__ == "__main__":
    main()
