"""Close-ups for ``vigil eval``: the held-out crop photos as whole photos, the plate filling them.

A camera close to a vehicle, or a person photographing a plate, gives a picture that is mostly
plate. These folders put the US and Brazilian crop photos of the reader's held-out splits
(``training.recognizer.splits``, by plate text) in ``vigil eval``'s format with the whole image
as the plate's box, so the whole engine (detector, text lines, reader) is scored on them. Not the
headline (the crops come from the reader's training sources); a check that close-ups are found.
A photo whose label cannot be right (``splits.trusted_text``) is kept with its text unknown: it
counts for finding the plate, not for reading it.

    PYTHONPATH=. .venv/bin/python -m training.realscenes.plate_only [--split val]

Writes ``build/realscenes/plate-only-{us,br}-<split>/`` (``labels.jsonl`` + ``images/``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2

from training.recognizer.crop_eval import SETS, labelled_crops
from training.recognizer.splits import DATASETS


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", choices=("val", "test"), default="val")
    p.add_argument("--data", type=Path, default=DATASETS)
    p.add_argument("--out", type=Path, default=Path("build/realscenes"))
    a = p.parse_args()
    for region, name in SETS:
        folder = a.out / f"plate-only-{region}-{a.split}"
        (folder / "images").mkdir(parents=True, exist_ok=True)
        lines = []
        for i, (rgb, text) in enumerate(labelled_crops(a.data, name, a.split)):
            image = f"images/{region}-{i:04d}.png"
            cv2.imwrite(str(folder / image), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            h, w = rgb.shape[:2]
            plate = {"box": [0, 0, w, h], "text": text, "region": region}
            lines.append(json.dumps({"image": image, "plates": [plate]}))
        (folder / "labels.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{folder}: {len(lines)} photos")


if __name__ == "__main__":
    main()
