"""Real scenes framed closer: each readable plate cut out with its car round it, filling a share.

A hand-held photo of a parked car, or a camera a few metres from the bumper, shows the plate at
a third or half of the picture's width, between the road scenes of the real-scene parts (plates
a tenth of the frame or less) and the close-ups of ``plate_only.py`` (the plate alone). This cuts
from each photo of a ``vigil eval`` folder, for every readable plate at least ``MIN_WIDTH``
pixels wide, a 4:3 window centred on the plate and ``width / share`` wide, for each share
asked, at native pixels (no resampling). A window that would leave the photo is moved inside
it; one that still cannot fit, or that cuts through another labelled plate, is skipped. Plates
wholly inside keep their labels.

    PYTHONPATH=. .venv/bin/python -m training.realscenes.framing --part test

Writes ``build/realscenes/framed-<part>/`` (``labels.jsonl`` + ``images/``; each line also
carries ``framing: {share, plate_width_px}``). ``--part`` may be any folder under the root
(``on-cars-us-test`` frames the US plates put on cars).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import cv2

from training.realscenes.parts import labelled_photos, moved_label, write_labels

SHARES = (0.3, 0.45, 0.6)
MIN_WIDTH = 60.0
ASPECT = 4 / 3


def window(
    box: list[float], share: float, photo_w: int, photo_h: int
) -> tuple[int, int, int, int] | None:
    """The 4:3 window (x, y, w, h) in which the plate ``box`` spans ``share`` of the width,
    centred on it and moved inside the photo; None when the photo is too small for it."""
    x, y, w, h = box
    ww = round(w / share)
    wh = round(ww / ASPECT)
    if ww > photo_w or wh > photo_h:
        return None
    x0 = min(max(0, round(x + w / 2 - ww / 2)), photo_w - ww)
    y0 = min(max(0, round(y + h / 2 - wh / 2)), photo_h - wh)
    return x0, y0, ww, wh


def _inside(box: list[float], win: tuple[int, int, int, int]) -> bool:
    x, y, w, h = box
    wx, wy, ww, wh = win
    return wx <= x and wy <= y and x + w <= wx + ww and y + h <= wy + wh


def _outside(box: list[float], win: tuple[int, int, int, int]) -> bool:
    x, y, w, h = box
    wx, wy, ww, wh = win
    return x + w <= wx or y + h <= wy or x >= wx + ww or y >= wy + wh


def framed_labels(
    plates: list[dict[str, Any]], win: tuple[int, int, int, int]
) -> list[dict[str, Any]] | None:
    """The labels of the plates wholly inside ``win``, in its pixels; None when ``win`` cuts
    through a plate (it would be neither in the labels nor out of the picture)."""
    wx, wy = win[0], win[1]
    out = []
    for p in plates:
        if _outside(p["box"], win):
            continue
        if not _inside(p["box"], win):
            return None
        out.append(moved_label(p, wx, wy))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", required=True, help="a folder under --root (dev, test, ...)")
    p.add_argument("--root", type=Path, default=Path("build/realscenes"))
    p.add_argument("--shares", type=float, nargs="+", default=list(SHARES))
    a = p.parse_args()
    src, out = a.root / a.part, a.root / f"framed-{a.part}"
    (out / "images").mkdir(parents=True, exist_ok=True)
    lines, skipped = [], 0
    for r, img in labelled_photos(src):
        fh, fw = img.shape[:2]
        for i, plate in enumerate(r["plates"]):
            if plate.get("text") is None or plate["box"][2] < MIN_WIDTH:
                continue
            for share in a.shares:
                win = window(plate["box"], share, fw, fh)
                labels = None if win is None else framed_labels(r["plates"], win)
                if win is None or labels is None:
                    skipped += 1
                    continue
                x0, y0, ww, wh = win
                name = f"images/{Path(r['image']).stem}--p{i}-s{round(share * 100)}.jpg"
                cv2.imwrite(str(out / name), img[y0 : y0 + wh, x0 : x0 + ww],
                            [cv2.IMWRITE_JPEG_QUALITY, 95])
                lines.append(json.dumps({
                    "image": name, "source": r.get("source"), "plates": labels,
                    "framing": {"share": share, "plate_width_px": plate["box"][2]},
                }))
    write_labels(out, lines)
    print(f"{out}: {len(lines)} photos, {skipped} windows skipped")


if __name__ == "__main__":
    main()
