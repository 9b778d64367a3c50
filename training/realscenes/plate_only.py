"""Close-ups for ``vigil eval``: the held-out crop photos as whole photos, the plate filling them.

A camera close to a vehicle, or a person photographing a plate, gives a picture that is mostly
plate. These folders put the US and Brazilian crop photos of the reader's held-out splits
(``training.recognizer.splits``, by plate text) in ``vigil eval``'s format with the whole image
as the plate's box, so the whole engine (detector, text lines, reader) is scored on them. Not the
headline (the crops come from the reader's training sources); a check that close-ups are found.
A photo whose label cannot be right (``splits.trusted_text``) or that a person could not read
again (``splits.labelled``) is kept with its text unknown: it counts for finding the plate, not
for reading it; a label a person read again carries what they read.

    PYTHONPATH=. .venv/bin/python -m training.realscenes.plate_only [--split val] [--frame 4:3]

Writes ``build/realscenes/plate-only-{us,br}-<split>/`` (``labels.jsonl`` + ``images/``).
``--frame W:H`` gives each photo that frame instead, its edge rows repeated above and below the
plate (``plate-only-{us,br}-<split>-W-H/``): a close-up framed squarer than its plate, as a
hand-held photo is, which the engine cannot read whole. The repeated rows are not real
surroundings, so these sets say whether such a plate is found, not how a real car's body
around it would distract the detector.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from training.recognizer.crop_eval import SETS, labelled_crops
from training.recognizer.splits import DATASETS


def _frame(value: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in value.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected W:H such as 4:3, got {value!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"expected W:H such as 4:3, got {value!r}")
    return w, h


def framed(rgb: np.ndarray, aspect: float) -> tuple[np.ndarray, int]:
    """``rgb`` given rows above and below (its edge rows repeated) to ``aspect`` (width over
    height), and how many went above; unchanged when it is already that square or squarer."""
    h, w = rgb.shape[:2]
    extra = max(0, round(w / aspect) - h)
    top = extra // 2
    out = cv2.copyMakeBorder(rgb, top, extra - top, 0, 0, cv2.BORDER_REPLICATE)
    return out, top


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", choices=("val", "test"), default="val")
    p.add_argument("--data", type=Path, default=DATASETS)
    p.add_argument("--out", type=Path, default=Path("build/realscenes"))
    p.add_argument("--frame", type=_frame, default=None, metavar="W:H",
                   help="frame each photo W:H (squarer than the plate), edge rows repeated")
    a = p.parse_args()
    for region, name in SETS:
        suffix = "" if a.frame is None else f"-{a.frame[0]}-{a.frame[1]}"
        folder = a.out / f"plate-only-{region}-{a.split}{suffix}"
        (folder / "images").mkdir(parents=True, exist_ok=True)
        lines = []
        for i, (rgb, text) in enumerate(labelled_crops(a.data, name, a.split)):
            image = f"images/{region}-{i:04d}.png"
            h, w = rgb.shape[:2]
            top = 0
            if a.frame is not None:
                rgb, top = framed(rgb, a.frame[0] / a.frame[1])
            cv2.imwrite(str(folder / image), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            plate = {"box": [0, top, w, h], "text": text, "region": region}
            lines.append(json.dumps({"image": image, "plates": [plate]}))
        (folder / "labels.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{folder}: {len(lines)} photos")


if __name__ == "__main__":
    main()
