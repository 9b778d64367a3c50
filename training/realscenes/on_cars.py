"""US and Brazilian plates on real cars: held-out crops put where a real scene's plates are.

The real-scene parts are Romanian dashcam frames and Open Images photos, with two readable US
plates in the test part and no Brazilian one, while the close-up sets (``plate_only.py``) are the
plate alone. This puts the reader's held-out US and Brazilian crop photos (``--split``, by plate
text, as ``plate_only.py``) on the cars of a real-scene part: each labelled plate of each photo
is covered by the next crop, as wide as the plate's box, its own aspect kept and centred on
the box (a US or Brazilian plate is squarer than a European one, so it hides the plate under
it), shrunk with area averaging, and the photo written again as JPEG at quality 90. A plate a
person could not read in the original photo stays unreadable (its text ``None``): it is as small
or as blurred as before. Everything round the plate is the real photo: bumper, car body, road,
other text. Not the headline (the crops come from the reader's training sources, pasted with
a sharp edge); a check of US and Brazilian lettering at road-scene sizes.

    PYTHONPATH=. .venv/bin/python -m training.realscenes.on_cars --part test --split test

Writes ``build/realscenes/on-cars-{us,br}-<part>/`` (``labels.jsonl`` + ``images/``).
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import cv2
import numpy as np

from training.realscenes.parts import labelled_photos, write_labels
from training.recognizer.crop_eval import SETS, labelled_crops
from training.recognizer.splits import DATASETS

JPEG_QUALITY = 90


def pasted(
    photo: np.ndarray, crop: np.ndarray, box: tuple[float, float, float, float]
) -> tuple[float, float, float, float] | None:
    """Put ``crop`` on ``photo`` (in place) as wide as ``box``, centred on it, its aspect kept;
    the pasted plate's box, or None when it would leave the photo."""
    x, y, w, h = box
    ch, cw = crop.shape[:2]
    pw = max(2, round(w))
    ph = max(2, round(pw * ch / cw))
    x0 = round(x + w / 2 - pw / 2)
    y0 = round(y + h / 2 - ph / 2)
    fh, fw = photo.shape[:2]
    if x0 < 0 or y0 < 0 or x0 + pw > fw or y0 + ph > fh:
        return None
    photo[y0 : y0 + ph, x0 : x0 + pw] = cv2.resize(crop, (pw, ph), interpolation=cv2.INTER_AREA)
    return float(x0), float(y0), float(pw), float(ph)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("dev", "val", "test"), required=True)
    p.add_argument("--split", choices=("val", "test"), required=True)
    p.add_argument("--data", type=Path, default=DATASETS)
    p.add_argument("--root", type=Path, default=Path("build/realscenes"))
    a = p.parse_args()
    src = a.root / a.part
    for region, name in SETS:
        crops = [(rgb, text) for rgb, text in labelled_crops(a.data, name, a.split) if text]
        out = a.root / f"on-cars-{region}-{a.part}"
        (out / "images").mkdir(parents=True, exist_ok=True)
        supply = itertools.cycle(crops)
        lines, dropped = [], 0
        for r, bgr in labelled_photos(src):
            photo = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            plates = []
            for pl in r["plates"]:
                rgb, text = next(supply)
                box = pasted(photo, rgb, tuple(pl["box"]))
                if box is None:  # the original plate stays, unlabelled by this set's region
                    dropped += 1
                    plates.append({"box": pl["box"], "text": None, "region": pl["region"]})
                    continue
                readable = pl.get("text") is not None
                plates.append(
                    {"box": [round(v, 1) for v in box], "text": text if readable else None,
                     "region": region}
                )
            image = "images/" + Path(r["image"]).with_suffix(".jpg").name
            cv2.imwrite(
                str(out / image), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY],
            )
            lines.append(json.dumps({"image": image, "source": r.get("source"), "plates": plates}))
        write_labels(out, lines)
        print(f"{out}: {len(lines)} photos, {dropped} plates left as they were (edge of photo)")


if __name__ == "__main__":
    main()
