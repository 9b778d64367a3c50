"""Where the synthetic renderer finds its fonts and US plate templates (read once, cached).

The data root defaults to ``../shared/datasets`` beside the checkout; ``VIGIL_DATASETS``
moves it.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

DATA_ROOT = Path(
    os.environ.get("VIGIL_DATASETS") or Path(__file__).resolve().parents[3] / "shared" / "datasets"
)
FONT_DIR = DATA_ROOT / "fonts"
TEMPLATE_SET = DATA_ROOT / "openalpr-us-state-plate-templates"

# DejaVuSansCondensed-Bold is held out: the synthetic test set uses it, training never does.
TRAIN_FONTS = (
    "OSP-DIN.ttf",
    "RobotoCondensed-Bold.ttf",
    "LiberationSans-Bold.ttf",
    "DejaVuSansMono-Bold.ttf",
)
HELDOUT_FONTS = ("DejaVuSansCondensed-Bold.ttf",)
# OSP-DIN (DIN 1451 style) is closest to real plate lettering, so it is drawn most often.
TRAIN_FONT_WEIGHTS = (0.45, 0.25, 0.15, 0.15)


def font_path(name: str) -> Path:
    p = FONT_DIR / name
    if not p.is_file():
        raise FileNotFoundError(f"font {p} not found (set VIGIL_DATASETS to the data root)")
    return p


@lru_cache(maxsize=1)
def us_templates() -> dict[str, tuple[np.ndarray, ...]]:
    """State code (``ca``) -> blank plate images of that state's designs, RGB uint8."""
    out: dict[str, list[np.ndarray]] = {}
    with (TEMPLATE_SET / "labels.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            bgr = cv2.imread(str(TEMPLATE_SET / rec["image"]), cv2.IMREAD_COLOR)
            if bgr is None:
                raise FileNotFoundError(f"template {rec['image']} unreadable")
            state = rec["region"].split("-", 1)[1].lower()
            out.setdefault(state, []).append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return {k: tuple(v) for k, v in out.items()}
