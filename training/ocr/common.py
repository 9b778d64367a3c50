"""Constants shared by the OCR data builder, trainer, exporter and evaluator."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from training.synth.formats import US_STATES

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_"
PAD = "_"
SLOTS = 10
HEIGHT, WIDTH = 64, 160
REGIONS = tuple(f"us-{s}" for s in US_STATES) + ("eu", "br")
PLATE_CLASSES = ("full", "paper")

WORK = Path("training/work/ocr")
DATASETS = Path(
    os.environ.get("VIGIL_DATASETS") or Path(__file__).resolve().parents[3] / "shared" / "datasets"
)
MODEL_DIR = Path("inference/models")

# Synthetic seeds: training plates use entropy [SEED_TRAIN, i], the synthetic test set
# [SEED_TEST, i] with the held-out font; the two streams never meet.
SEED_TRAIN = 20261123
SEED_TEST = 99001123


def split_of(key: str) -> str:
    """Deterministic train/val/test split (70/10/20) from a grouping key (the plate text, so a
    plate photographed twice never lands on both sides)."""
    h = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100
    return "train" if h < 70 else "val" if h < 80 else "test"


def encode_text(text: str) -> np.ndarray:
    if len(text) > SLOTS:
        raise ValueError(f"text {text!r} longer than {SLOTS} slots")
    idx = [ALPHABET.index(c) for c in text] + [ALPHABET.index(PAD)] * (SLOTS - len(text))
    return np.array(idx, np.int8)


def region_index(region: str) -> int:
    r = region.lower()
    if r.startswith("eu"):
        r = "eu"
    return REGIONS.index(r)
