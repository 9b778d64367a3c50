"""Sheets for reading a crop collection's labels again by eye.

The Brazilian crops' labels come from their file names, and on the real photos many are slips
(`QRW0357` on a plate reading IRW-0357, `EZV6571` on EZV-6157). This lists the real photos
(JPEG; the collection's rendered PNG plates carry their own text) of a collection whose label
the committed reader, reading the crop alone, does not read, plus those whose label starts with
one of ``--first`` (the reader learns a slip repeated often enough: Rio Grande do Sul's
I-series plates named with a D were read with a D), and draws them in numbered sheets with the
label and the read above each crop. What a person reads on them goes into
``label_fixes.jsonl`` (``splits.labelled``); a label that the photo bears out is left alone,
and a photo that does not show its registration clearly is given no text.

    PYTHONPATH=. .venv/bin/python -m training.recognizer.label_review --out build/label-review

Writes ``sheet-NN.png`` and ``listed.jsonl`` (image, label, read, split) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2

from training.realscenes.sheets import PER_SHEET, cell, grid
from training.recognizer.splits import DATASETS, split_of


def main() -> None:
    from inference.engine import DEFAULT_MODEL_DIR
    from inference.ocr import PlateReader

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", default="openalpr-traindetector-br-crops")
    p.add_argument("--first", default="DQ", help="also list labels starting with these")
    p.add_argument("--data", type=Path, default=DATASETS)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    reader = PlateReader.load(DEFAULT_MODEL_DIR)
    listed, cells = [], []
    for line in (a.data / a.set / "labels.jsonl").read_text().splitlines():
        r = json.loads(line)
        label = r.get("plate_text")
        if not label or not r["image"].endswith(".jpg"):
            continue
        bgr = cv2.imread(str(a.data / a.set / r["image"]), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        read = reader.read(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).text
        if read == label and label[0] not in a.first:
            continue
        cells.append(cell(bgr, f"{len(listed)} {label}  read: {read}"))
        listed.append({"image": r["image"], "label": label, "read": read,
                       "split": split_of(label)})
    reader.close()
    for n in range(0, len(cells), PER_SHEET):
        cv2.imwrite(str(a.out / f"sheet-{n // PER_SHEET:02d}.png"), grid(cells[n : n + PER_SHEET]))
    (a.out / "listed.jsonl").write_text("".join(json.dumps(x) + "\n" for x in listed))
    print(f"{len(listed)} photos listed in {a.out}")


if __name__ == "__main__":
    main()
