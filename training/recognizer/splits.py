"""Where the data sets live and the crop sets' train / val / test split."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
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


# Labels of the Brazilian crops' real photos that were read again by eye (2026-12-05): every
# photo whose label the committed reader disagreed with, and every one labelled with a leading D
# or Q (Rio Grande do Sul's I-series plates had been named with a D or a Q). ``text`` null: not
# legible enough to say. The rendered crops (.png) were never wrong.
LABEL_FIXES = Path(__file__).with_name("label_fixes.jsonl")


def label_fixes(path: Path = LABEL_FIXES) -> dict[tuple[str, str], str | None]:
    """(set name, image) -> the text a person read on it, None where unreadable."""
    out: dict[tuple[str, str], str | None] = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        out[(r["set"], r["image"])] = r["text"]
    return out


@dataclass(frozen=True)
class LabelledCrop:
    image: str  # relative to the set's folder
    split: str  # by the label as written, so no crop ever changes side
    text: str | None  # the trusted, corrected text; None: never trained or scored on


def labelled(name: str, region: str, data: Path = DATASETS,
             fixes: dict[tuple[str, str], str | None] | None = None) -> list[LabelledCrop]:
    """Every crop of ``name`` that has a text label, with its split and corrected text.

    A held-out crop whose corrected text is also a training crop's (the same plate named two
    ways, `HTS3074` and `MTS3074`) gets no text, so no plate is read on both sides."""
    fixes = label_fixes() if fixes is None else fixes
    rows = []
    for line in (data / name / "labels.jsonl").read_text().splitlines():
        r = json.loads(line)
        label = r.get("plate_text")
        if not label:
            continue
        key = (name, r["image"])
        text = fixes[key] if key in fixes else trusted_text(region, label)
        rows.append(LabelledCrop(r["image"], split_of(label), text))
    trained = {c.text for c in rows if c.split == "train" and c.text}
    return [
        LabelledCrop(c.image, c.split, None)
        if c.split != "train" and c.text in trained else c
        for c in rows
    ]
