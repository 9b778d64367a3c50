"""Where the data sets live and the crop sets' train / val / test split."""

from __future__ import annotations

import hashlib
import os
import re
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


# The Brazilian crops were gathered before Brazil's Mercosur plates (LLLNLNN, issued from 2018):
# every photo shows an old grey or red LLL-NNNN plate, so a label with a letter in fifth place
# is a slip of whoever named the file (checked by eye on the val split: `PVD8Q53` shows
# PVD-8153, `KXD7I21` KXD-7121, `HDV2D20` HIV-2120).
_BR_OLD = re.compile(r"[A-Z]{3}[0-9]{4}")


def trusted_text(region: str, text: str | None) -> str | None:
    """``text`` when it can be a label of a plate of ``region`` in these collections, else
    None (the photo's text is then unknown, never trained or scored on).

    Pure. US labels of one character are a specimen plate's zeros shortened by the file name
    (`RTR 0000` and `00000` both labelled `0`)."""
    if not text:
        return None
    if region == "br":
        return text if _BR_OLD.fullmatch(text) else None
    if region == "us":
        return text if len(text) >= 2 else None
    return text
