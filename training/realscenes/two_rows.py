"""Two-row plates on real cars: synthetic square plates put where a real scene's plates are.

No set here has more than a handful of real two-row plates (square European and British rear
plates, Mercosur motorcycle plates), so this puts rendered ones (``training.synth``, the
held-out font) over each labelled plate of a real-scene part, centred on its box and
``--width`` as wide (a square plate as wide as a long one would hide half the car), written
again as JPEG at quality 90. A plate a person could not read in the original photo stays
unreadable (text ``None``). A diagnostic of the engine on two-row plates, never the headline:
the plates are clean renders with a sharp edge and the scenes' own light does not touch them.

    PYTHONPATH=. .venv/bin/python -m training.realscenes.two_rows --part dev-q --style mercosur2

Writes ``build/realscenes/two-rows-<style>-<part>/`` (``labels.jsonl`` + ``images/``);
``training.realscenes.true_box --part two-rows-<style>-<part>`` then cuts each plate out at its
true box, to read without finding.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from training.realscenes.on_cars import JPEG_QUALITY, pasted
from training.realscenes.parts import labelled_photos, write_labels
from training.synth.render import render_plate

STYLES = {"mercosur2": "br", "eu2": "eu", "grey2": "br"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", required=True, help="a folder under --root (dev-q, test, ...)")
    p.add_argument("--style", choices=sorted(STYLES), required=True)
    p.add_argument("--width", type=float, default=0.6,
                   help="the square plate's width as a fraction of the real plate's box")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--root", type=Path, default=Path("build/realscenes"))
    a = p.parse_args()
    region = STYLES[a.style]
    rng = np.random.default_rng(a.seed)
    out = a.root / f"two-rows-{a.style}-{a.part}"
    (out / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for r, bgr in labelled_photos(a.root / a.part):
        photo = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        plates = []
        for pl in r["plates"]:
            plate = render_plate(rng, region=region, style=a.style, split="test")
            x, y, w, h = pl["box"]
            box = pasted(photo, plate.image, (x + w * (1 - a.width) / 2, y, w * a.width, h))
            if box is None:  # the original plate stays, unlabelled by this set's region
                plates.append({"box": pl["box"], "text": None, "region": pl["region"]})
                continue
            readable = pl.get("text") is not None
            plates.append({"box": [round(v, 1) for v in box],
                           "text": plate.text if readable else None, "region": region})
        image = "images/" + Path(r["image"]).with_suffix(".jpg").name
        cv2.imwrite(str(out / image), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        lines.append(json.dumps({"image": image, "source": r.get("source"), "plates": plates}))
    write_labels(out, lines)
    print(f"{out}: {len(lines)} photos")


if __name__ == "__main__":
    main()
