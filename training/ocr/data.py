"""Build the OCR training/validation/test arrays into ``training/work/ocr/*.npz``.

Run: ``.venv-train/bin/python -m training.ocr.data [--synth 30000] [--workers 2]``.

Sources (see docs/models-ocr.md): real US crops (``us-plate-photos``), real BR crops with text
(``openalpr-traindetector-br-crops``), EU crops without text (region only, the character loss is
masked), and synthetic plates from :mod:`training.synth`. Real crops are split 70/10/20 by plate
text with :func:`training.ocr.common.split_of`; the test split is never trained on. Each training
crop is also augmented into roadside variants.
"""

from __future__ import annotations

import argparse
import json
import logging
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import cv2
import numpy as np

from inference.ocr import preprocess
from training.ocr.common import (
    DATASETS,
    HEIGHT,
    PLATE_CLASSES,
    SEED_TEST,
    SEED_TRAIN,
    WIDTH,
    WORK,
    encode_text,
    region_index,
    split_of,
)
from training.synth import augment_plate, render_plate

log = logging.getLogger(__name__)


def to_input(crop_rgb: np.ndarray) -> np.ndarray:
    """Crop -> the uint8 HEIGHTxWIDTH grayscale the model sees (same path as the runtime)."""
    return np.round(preprocess(crop_rgb, HEIGHT, WIDTH)[0, ..., 0] * 255).astype(np.uint8)


def crop_corners(rng: np.random.Generator, img: np.ndarray, corners: Any) -> np.ndarray:
    """Axis-aligned crop around the plate corners with a detector-like loose/tight margin."""
    pts = np.array(corners, np.float32)
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    w, h = x1 - x0, y1 - y0
    mx = rng.uniform(-0.03, 0.08, 2) * w
    my = rng.uniform(-0.05, 0.15, 2) * h
    H, W = img.shape[:2]
    xa, xb = int(max(0, x0 - mx[0])), int(min(W, x1 + mx[1]))
    ya, yb = int(max(0, y0 - my[0])), int(min(H, y1 + my[1]))
    return img[ya:yb, xa:xb]


def _synth(args: tuple[int, int, str]) -> tuple[np.ndarray, np.ndarray, int, int, str]:
    seed, i, split = args
    rng = np.random.default_rng([seed, i])
    p = render_plate(rng, split=split)
    strength = float(rng.uniform(0.15, 1.0)) if split == "train" else 0.6
    img, corners = augment_plate(rng, p.image, strength=strength)
    x = to_input(crop_corners(rng, img, corners))
    cls = PLATE_CLASSES.index(p.plate_class)
    return x, encode_text(p.text), region_index(p.region), cls, p.style


def _load(set_name: str) -> list[dict[str, Any]]:
    base = DATASETS / set_name
    with (base / "labels.jsonl").open(encoding="utf-8") as fh:
        recs = [json.loads(line) for line in fh]
    for r in recs:
        r["path"] = str(base / r["image"])
    return recs


def _real(args: tuple[str, str, str, int, int]) -> list[tuple[np.ndarray, int]]:
    """One real crop -> [(input, variant)] with variant 0 clean and the rest augmented."""
    path, key, _, variants, strength_pct = args
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    out = [(to_input(rgb), 0)]
    rng = np.random.default_rng(
        [SEED_TRAIN, int.from_bytes(key.encode()[:16].ljust(16, b"\0"), "little") % 2**31]
    )
    for v in range(1, variants):
        img, corners = augment_plate(rng, rgb, strength=float(rng.uniform(0.1, strength_pct / 100)))
        out.append((to_input(crop_corners(rng, img, corners)), v))
    return out


def build(n_synth: int, n_synth_test: int, workers: int) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for name, seed, split, n in (
            ("synth_test", SEED_TEST, "test", n_synth_test),
            ("synth_train", SEED_TRAIN, "train", n_synth),
        ):
            rows = list(pool.map(_synth, [(seed, i, split) for i in range(n)], chunksize=64))
            np.savez_compressed(
                WORK / f"{name}.npz",
                x=np.stack([r[0] for r in rows]),
                text=np.stack([r[1] for r in rows]),
                region=np.array([r[2] for r in rows], np.int16),
                plate_class=np.array([r[3] for r in rows], np.int8),
                char_weight=np.ones(n, np.float32),
                style=np.array([r[4] for r in rows]),
            )
            log.info("built %s: %d", name, n)

        counts: dict[str, int] = {"synth": n_synth}
        sets = {
            "us": "us-plate-photos",
            "br": "openalpr-traindetector-br-crops",
            "eu": "openalpr-traindetector-eu-crops",
        }
        variants = {"us": 12, "br": 2, "eu": 2}
        for country, set_name in sets.items():
            recs = _load(set_name)
            if country != "eu":
                recs = [r for r in recs if r["plate_text"]]
            jobs = []
            for r in recs:
                key = r["plate_text"] or r["source_blob"]
                split = split_of(key)
                r["split"] = split
                n_var = variants[country] if split == "train" else 1
                jobs.append((r["path"], key, split, n_var, 70))
            results = list(pool.map(_real, jobs, chunksize=16))
            for split in ("train", "val", "test"):
                xs, texts, regions, weights, names = [], [], [], [], []
                for r, res in zip(recs, results, strict=True):
                    if r["split"] != split:
                        continue
                    for x, _v in res:
                        xs.append(x)
                        texts.append(encode_text(r["plate_text"] or ""))
                        regions.append(region_index(r["region"]))
                        weights.append(1.0 if r["plate_text"] else 0.0)
                        names.append(r["image"])
                if not xs:
                    continue
                if split == "train":
                    counts[country] = sum(1 for r in recs if r["split"] == "train")
                np.savez_compressed(
                    WORK / f"real_{country}_{split}.npz",
                    x=np.stack(xs),
                    text=np.stack(texts),
                    region=np.array(regions, np.int16),
                    plate_class=np.zeros(len(xs), np.int8),
                    char_weight=np.array(weights, np.float32),
                    image=np.array(names),
                )
                log.info("built real %s %s: %d", country, split, len(xs))
        (WORK / "counts.json").write_text(json.dumps(counts) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--synth", type=int, default=30000)
    ap.add_argument("--synth-test", type=int, default=1500)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    build(a.synth, a.synth_test, a.workers)


if __name__ == "__main__":
    main()
