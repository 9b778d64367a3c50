"""Each readable plate cut at its true box with an 8 % / 15 % margin: the reader given the box.

The reading issue measured the reader "with the true box given": each labelled plate cut with a
margin of 8 % of its width at each side and 15 % of its height above and below, and read alone.
That separates reading from finding; the end-to-end figures of ``vigil eval`` on the parts mix
both. This writes such cuts of every readable plate of a ``vigil eval`` folder as photos (PNG,
no second compression), so the same cut can be read by the reader alone
(``training.recognizer.crop_eval --folder``) and by ``vigil eval`` (the engine as ``vigil read``
runs it on a photo that is one plate: what a user gets from a crop another system made).

    PYTHONPATH=. .venv/bin/python -m training.realscenes.true_box --part test

Writes ``build/realscenes/true-box-<part>/`` (``labels.jsonl`` + ``images/``): one plate per
photo, its box in the cut's pixels. ``--part`` may be any folder under the root
(``on-cars-us-test`` cuts the held-out US plates put on real cars).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2

from training.realscenes.parts import labelled_photos, moved_label, write_labels

MARGIN = (0.08, 0.15)  # of the plate's width at each side, of its height above and below
MIN_SIDE = 8  # px: a cut smaller than this has nothing to read


def cut(
    box: list[float], photo_w: int, photo_h: int, margin: tuple[float, float] = MARGIN
) -> tuple[int, int, int, int] | None:
    """The window (x, y, w, h) of ``box`` with ``margin``, clipped to the photo; None when it
    would be under :data:`MIN_SIDE` pixels either way."""
    x, y, w, h = box
    x0 = max(0, round(x - margin[0] * w))
    y0 = max(0, round(y - margin[1] * h))
    x1 = min(photo_w, round(x + w + margin[0] * w))
    y1 = min(photo_h, round(y + h + margin[1] * h))
    if x1 - x0 < MIN_SIDE or y1 - y0 < MIN_SIDE:
        return None
    return x0, y0, x1 - x0, y1 - y0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", required=True, help="a folder under --root (dev, test, ...)")
    p.add_argument("--root", type=Path, default=Path("build/realscenes"))
    a = p.parse_args()
    src, out = a.root / a.part, a.root / f"true-box-{a.part}"
    (out / "images").mkdir(parents=True, exist_ok=True)
    lines, skipped = [], 0
    for r, img in labelled_photos(src):
        fh, fw = img.shape[:2]
        for i, plate in enumerate(r["plates"]):
            if plate.get("text") is None:
                continue
            win = cut(plate["box"], fw, fh)
            if win is None:
                skipped += 1
                continue
            x0, y0, ww, wh = win
            name = f"images/{Path(r['image']).stem}--p{i}.png"
            cv2.imwrite(str(out / name), img[y0 : y0 + wh, x0 : x0 + ww])
            lines.append(json.dumps({
                "image": name, "source": r.get("source"), "plates": [moved_label(plate, x0, y0)],
            }))
    write_labels(out, lines)
    print(f"{out}: {len(lines)} cuts, {skipped} plates too small to cut")


if __name__ == "__main__":
    main()
