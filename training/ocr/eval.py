"""Evaluate the committed int8 OCR model on the held-out test sets (runtime venv, no TF).

Run: ``.venv/bin/python -m training.ocr.eval`` after ``training.ocr.data`` built the synthetic
test arrays. Real crops are read from the data sets through the runtime path
(:class:`inference.ocr.PlateReader`); the test split is the 20 % from
:func:`training.ocr.common.split_of`. Writes the figures into the manifest's ``metrics``,
``training/work/ocr/eval.json`` and a montage of failures into ``docs/img/ocr-failures.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inference.ocr import PlateReader
from inference.records import OcrResult
from training.ocr.common import ALPHABET, DATASETS, MODEL_DIR, PAD, REGIONS, WORK, split_of
from training.ocr.evaluate_core import levenshtein

REAL_SETS = {
    "real_us_test": "us-plate-photos",
    "real_br_test": "openalpr-traindetector-br-crops",
    "real_eu_test": "openalpr-traindetector-eu-crops",
}


def real_test_items(set_name: str) -> list[tuple[np.ndarray, str | None, str, str]]:
    """(crop RGB, text or None, region label, image name) for the test split of a real set."""
    base = DATASETS / set_name
    items = []
    with (base / "labels.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            if set_name != "openalpr-traindetector-eu-crops" and not r["plate_text"]:
                continue
            if split_of(r["plate_text"] or r["source_blob"]) != "test":
                continue
            bgr = cv2.imread(str(base / r["image"]), cv2.IMREAD_COLOR)
            region = r["region"].lower()
            region = "eu" if region.startswith("eu") else region
            items.append(
                (cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), r["plate_text"], region, r["image"])
            )
    return items


def synth_items() -> list[tuple[np.ndarray, str | None, str, str]]:
    with np.load(WORK / "synth_test.npz") as z:
        xs, texts, regions, styles = z["x"], z["text"], z["region"], z["style"]
    out = []
    for i in range(len(xs)):
        t = "".join(ALPHABET[int(c)] for c in texts[i] if ALPHABET[int(c)] != PAD)
        out.append((xs[i], t, REGIONS[int(regions[i])], f"synth-{i}-{styles[i]}"))
    return out


def score(results: list[OcrResult], items: list[Any]) -> tuple[dict[str, Any], list[int]]:
    m: dict[str, Any] = {"count": len(items)}
    m["region_accuracy"] = round(
        float(np.mean([r.region == it[2] for r, it in zip(results, items, strict=True)])), 4
    )
    with_text = [i for i, it in enumerate(items) if it[1]]
    failures: list[int] = []
    if with_text:
        exact = topn = partial = confident = confident_ok = errs = chars = 0
        for i in with_text:
            r, truth = results[i], items[i][1]
            best = r.candidates[0].text if r.candidates else ""
            exact += best == truth
            topn += any(c.text == truth for c in r.candidates)
            is_partial = "?" in r.text
            partial += is_partial
            if not is_partial:
                confident += 1
                confident_ok += r.text == truth
            errs += levenshtein(best, truth)
            chars += len(truth)
            if best != truth:
                failures.append(i)
        n = len(with_text)
        m.update(
            count=n,
            exact=round(exact / n, 4),
            top_n_hit=round(topn / n, 4),
            cer=round(errs / chars, 4),
            partial_rate=round(partial / n, 4),
            exact_when_not_partial=round(confident_ok / max(confident, 1), 4),
        )
    return m, failures


def montage(rows: list[tuple[np.ndarray, str, str]], path: Path, cols: int = 4) -> None:
    tiles = []
    for img, pred, truth in rows:
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        t = cv2.resize(img, (240, 96), interpolation=cv2.INTER_AREA)
        pad = np.full((40, 240, 3), 255, np.uint8)
        cv2.putText(
            pad, f"read  {pred or '-'}", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (200, 0, 0), 1
        )
        cv2.putText(pad, f"truth {truth}", (4, 34), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 120, 0), 1)
        tiles.append(np.vstack([t, pad]))
    while len(tiles) % cols:
        tiles.append(np.full_like(tiles[0], 255))
    grid = np.vstack([np.hstack(tiles[i : i + cols]) for i in range(0, len(tiles), cols)])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    ap.add_argument("--montage", type=Path, default=Path("docs/img/ocr-failures.png"))
    ap.add_argument("--no-write", action="store_true", help="print only, touch no files")
    a = ap.parse_args()
    metrics: dict[str, Any] = {}
    failure_rows: list[tuple[np.ndarray, str, str]] = []
    with PlateReader.load(a.model_dir, threads=1) as reader:
        sets = {name: real_test_items(ds) for name, ds in REAL_SETS.items()}
        sets["synth_test"] = synth_items()
        for name, items in sets.items():
            t0 = time.perf_counter()
            results = [reader.read(it[0]) for it in items]
            dt = (time.perf_counter() - t0) / max(len(items), 1)
            m, failures = score(results, items)
            m["ms_per_crop_1_thread"] = round(dt * 1000, 3)
            metrics[name] = m
            take = 12 if name != "real_eu_test" else 0
            for i in failures[:take]:
                best = results[i].candidates[0].text if results[i].candidates else ""
                failure_rows.append((items[i][0], f"{results[i].text} ({best})", str(items[i][1])))
    print(json.dumps(metrics, indent=2))
    if a.no_write:
        return
    mpath = a.model_dir / "ocr.json"
    manifest = json.loads(mpath.read_text())
    manifest["metrics"] = metrics
    mpath.write_text(json.dumps(manifest, indent=2) + "\n")
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "eval.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if failure_rows:
        montage(failure_rows, a.montage)


if __name__ == "__main__":
    main()
