"""Rendered plates on real cars: synthetic plates put where a real scene's plates are.

No set here has more than a handful of real two-row plates (square European and British rear
plates, Mercosur motorcycle plates), nor any real Mercosur car plate (ABC1D23), so this puts
rendered ones (``training.synth``, the held-out font unless ``--font fe``: FE-Schrift, the
face real Mercosur plates use) over each labelled plate of a real-scene part, centred on its
box and ``--width`` as wide (a square plate as wide as a long one would hide half the car; a
one-row plate 0.9), written again as JPEG at quality 90. A plate a person could not read in
the original photo stays unreadable (text ``None``). A diagnostic of the engine on plate designs
no real photo here shows, never the headline: the plates are clean renders with a sharp edge
and the scenes' own light does not touch them.

    PYTHONPATH=. .venv/bin/python -m training.realscenes.two_rows --part dev-q --style mercosur2
    PYTHONPATH=. .venv/bin/python -m training.realscenes.two_rows --part val --style mercosur \
        --font fe

Writes ``build/realscenes/two-rows-<style>-<part>/`` (one-row styles:
``one-row-<style>[-fe]-<part>``; ``labels.jsonl`` + ``images/``);
``training.realscenes.true_box --part <that folder>`` then cuts each plate out at its true box,
to read without finding.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from training.realscenes.on_cars import JPEG_QUALITY, pasted
from training.realscenes.parts import labelled_photos, write_labels
from training.synth.render import MERCOSUR_FONT, TWO_ROW_STYLES, render_plate

STYLES = {"mercosur2": "br", "eu2": "eu", "grey2": "br", "mercosur": "br"}
TWO_ROW_WIDTH = 0.6
ONE_ROW_WIDTH = 0.9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", required=True, help="a folder under --root (dev-q, test, ...)")
    p.add_argument("--style", choices=sorted(STYLES), required=True)
    p.add_argument("--width", type=float, default=None,
                   help="the plate's width as a fraction of the real plate's box (default "
                   f"{TWO_ROW_WIDTH} for two-row plates, {ONE_ROW_WIDTH} for one-row)")
    p.add_argument("--font", choices=("heldout", "fe"), default="heldout",
                   help="the reader's held-out face, or FE-Schrift (Mercosur's own lettering)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--root", type=Path, default=Path("build/realscenes"))
    a = p.parse_args()
    region = STYLES[a.style]
    rng = np.random.default_rng(a.seed)
    two = a.style in TWO_ROW_STYLES
    width = a.width if a.width is not None else (TWO_ROW_WIDTH if two else ONE_ROW_WIDTH)
    font = MERCOSUR_FONT if a.font == "fe" else None
    name = f"two-rows-{a.style}" if two else f"one-row-{a.style}"
    out = a.root / f"{name}{'-fe' if font else ''}-{a.part}"
    (out / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for r, bgr in labelled_photos(a.root / a.part):
        photo = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        plates = []
        for pl in r["plates"]:
            plate = render_plate(rng, region=region, style=a.style, split="test", font=font)
            x, y, w, h = pl["box"]
            box = pasted(photo, plate.image, (x + w * (1 - width) / 2, y, w * width, h))
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
