"""Fit the reader's softmax temperature so that its confidences mean what they say.

A fine-tuned network is over-confident on what it has not seen. One scalar temperature on the
per-step logits (``labels.temperature`` in the manifest, applied by ``inference.ocr.decode``) is
fitted here on crops the model never trained on: the val split (by plate text) of the US and
Brazilian crop sets, as given and re-cut with detector-like margins, blur and JPEG
(``features.jitter_plate_crop`` / ``features.photometric``). The criterion is the Brier score of
the top read's confidence against "the read is exactly right"; the expected calibration error
(10 bins) is printed beside it. The real-scene dev part, where the goal is measured, is not used:
the model trained on it.

    PYTHONPATH=. .venv-train/bin/python -m training.recognizer.calibrate \
        --model-dir inference/models [--name ocr_small] [--write]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from training.recognizer.crop_eval import SETS, crops
from training.recognizer.splits import DATASETS

GRID = tuple(round(t, 2) for t in np.arange(0.7, 2.51, 0.05))


def main() -> None:
    from inference.evaluation import calibration_error
    from inference.ocr import MODEL_NAME, PlateReader, decode
    from training.recognizer.features import jitter_plate_crop, photometric

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", type=Path, default=Path("inference/models"))
    p.add_argument("--copies", type=int, default=2, help="augmented copies per crop")
    p.add_argument("--data", type=Path, default=DATASETS)
    p.add_argument("--name", default=MODEL_NAME,
                   help="the reader to fit (ocr_small: the engine's small-plate reader)")
    p.add_argument("--write", action="store_true", help="store the temperature in <name>.json")
    p.add_argument("--temperature", type=float, default=None,
                   help="store this temperature instead of the fitted one (printed beside it)")
    a = p.parse_args()
    reader = PlateReader.load(a.model_dir, 1, top_n=10, name=a.name)
    base = replace(reader.labels, temperature=1.0)
    rng = np.random.default_rng(7)
    samples: list[tuple[np.ndarray, str]] = []
    for _, name in SETS:
        for img, text in crops(a.data, name, "val"):
            bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
            views = [img] + [
                cv2.cvtColor(photometric(rng, jitter_plate_crop(rng, bgr)), cv2.COLOR_BGR2RGB)
                for _ in range(a.copies)
            ]
            for v in views:
                if v.shape[0] >= 2 and v.shape[1] >= 2:
                    samples.append((reader.step_probs(np.ascontiguousarray(v))[0], text))
    rows = []
    for t in GRID:
        labels = replace(base, temperature=float(t))
        conf, ok = [], []
        for probs, text in samples:
            r = decode(probs, labels, 10, reader.partial_threshold)
            conf.append(r.confidence)
            ok.append(r.text == text)
        c, o = np.array(conf), np.array(ok, np.float64)
        e = calibration_error(list(zip(conf, ok, strict=True))) or 0.0
        rows.append((float(np.mean((c - o) ** 2)), e, float(o.mean()), t))
    best = min(rows)
    for brier, e, acc, t in rows:
        mark = " <" if t == best[3] else ""
        print(f"T {t:.2f}: brier {brier:.4f} ece {e:.4f} exact {acc:.3f}{mark}")
    print(f"{len(samples)} samples; temperature {best[3]:.2f} (ece {best[1]:.4f}, "
          f"at 1.00: {next(r[1] for r in rows if r[3] == 1.0):.4f})")
    if a.write:
        chosen = best[3] if a.temperature is None else a.temperature
        path = a.model_dir / f"{a.name}.json"
        manifest = json.loads(path.read_text())
        manifest["labels"]["temperature"] = chosen
        path.write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"wrote labels.temperature = {chosen} into {path}")


if __name__ == "__main__":
    main()
