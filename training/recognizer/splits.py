"""Where the data sets live and the crop sets' train / val / test split."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

DATASETS = Path(
    os.environ.get("VIGIL_DATASETS") or Path(__file__).resolve().parents[3] / "shared" / "datasets"
)


def split_of(key: str) -> str:
    """Deterministic train/val/test split (70/10/20) from a grouping key (the plate text, so a
    plate photographed twice never lands on both sides). The same rule the earlier reader used,
    so its held-out crops stay held out."""
    h = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100
    return "train" if h < 70 else "val" if h < 80 else "test"
