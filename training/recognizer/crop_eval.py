"""Diagnostic: the reader alone on the held-out crops of its training sources.

Not the reader's accuracy (that is ``vigil eval`` on real scenes, docs/evaluation.md): these crops
are cut by people and come from the same sources as the training crops. It tells whether a change
to the reader helps or hurts each source, and it is what a fine-tuning run may be compared on
(``--split val``); ``--split test`` is for the figures in docs/models-ocr.md.

``--folder`` reads instead the photos of a folder that holds one plate per photo, each plate cut
at its true box with a margin (``training.realscenes.true_box``): the reader given the box, per
region, on real scenes (docs/evaluation.md).

    PYTHONPATH=. .venv/bin/python -m training.recognizer.crop_eval [--model-dir DIR] [--split val]
    PYTHONPATH=. .venv/bin/python -m training.recognizer.crop_eval --folder FOLDER
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from inference.engine import region_family
from inference.records import OcrResult
from training.recognizer.splits import DATASETS, labelled

SETS = (("us", "us-plate-photos"), ("br", "openalpr-traindetector-br-crops"))


def crops(data: Path, name: str, split: str) -> list[tuple[np.ndarray, str]]:
    """The crops of ``split`` whose text label is trusted (``splits.labelled``)."""
    return [(rgb, text) for rgb, text in labelled_crops(data, name, split) if text is not None]


def labelled_crops(data: Path, name: str, split: str) -> list[tuple[np.ndarray, str | None]]:
    """Every crop of ``split`` with a text label, the text corrected where a person read it again
    and None where it is not trusted (``splits.labelled``; the split still goes by the label
    as written, so no crop changes side)."""
    region = dict((n, r) for r, n in SETS)[name]
    out: list[tuple[np.ndarray, str | None]] = []
    for c in labelled(name, region, data):
        if c.split != split:
            continue
        bgr = cv2.imread(str(data / name / c.image), cv2.IMREAD_COLOR)
        if bgr is not None:
            out.append((cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), c.text))
    return out


def folder_crops(folder: Path) -> list[tuple[np.ndarray, str, str]]:
    """The readable plate of each photo of a one-plate-per-photo ``vigil eval`` folder
    (``training.realscenes.true_box``) with its text and region family (``other`` when the
    label names none of the reader's regions)."""
    from training.realscenes.parts import labelled_photos

    out = []
    for r, bgr in labelled_photos(folder):
        for p in r["plates"]:
            if p.get("text"):
                family = region_family(p.get("region"))
                region = family if family in ("us", "eu", "br") else "other"
                out.append((cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), p["text"], region))
    return out


class Reader(Protocol):
    def read(self, crop_rgb: np.ndarray) -> OcrResult: ...


def score(reader: Reader, items: list[tuple[np.ndarray, str, str]]) -> dict[str, dict[str, float]]:
    """Exact read, truth among the top-10 and region head right, per region, in %."""
    tally: dict[str, list[int]] = {}
    for img, text, region in items:
        r = reader.read(img)
        t = tally.setdefault(region, [0, 0, 0, 0])
        t[0] += 1
        t[1] += r.text == text
        t[2] += any(c.text == text for c in r.candidates)
        t[3] += region_family(r.region) == region
    return {
        region: {
            "crops": n,
            "exact": round(100 * exact / n, 1),
            "top10": round(100 * top / n, 1),
            "region": round(100 * region_ok / n, 1),
        }
        for region, (n, exact, top, region_ok) in sorted(tally.items())
    }


def main() -> None:
    from inference.ocr import PlateReader

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", type=Path, default=Path("inference/models"))
    p.add_argument("--split", choices=("val", "test"), default="val")
    p.add_argument("--data", type=Path, default=DATASETS)
    p.add_argument(
        "--folder",
        type=Path,
        default=None,
        help="read the photos of this one-plate-per-photo folder (training.realscenes.true_box) "
        "instead of the crop sets",
    )
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    reader = PlateReader.load(a.model_dir, 1, top_n=10)
    if a.folder is not None:
        result = score(reader, folder_crops(a.folder))
    else:
        result = {}
        for region, name in SETS:
            items = [(img, text, region) for img, text in crops(a.data, name, a.split)]
            result.update(score(reader, items))
    if a.json:
        print(json.dumps(result))
    else:
        for region, r in result.items():
            print(f"{region}: {r['crops']} crops, exact {r['exact']} %, top-10 {r['top10']} %, "
                  f"region {r['region']} %")


if __name__ == "__main__":
    main()
