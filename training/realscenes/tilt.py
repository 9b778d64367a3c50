"""Tilted copies of a real-scene part: the roll check of the sets.

A camera mounted a little off level, a plate hung crooked, a bike leaning: the localisation issue
asks for plates tilted up to 15 degrees, and the scenes here are nearly level. This rotates each
photo of a ``vigil eval`` folder written by ``build.py`` about its centre by 8 to 15 degrees, the
sign alternating (seeded by the image name), keeping its size (the corners are filled by
reflection, which no plate is cut from), and writes ``tilt-<part>``: every plate's box is the
axis-aligned box of its rotated outline; a plate whose rotated outline leaves the frame is
dropped.

    PYTHONPATH=. .venv/bin/python -m training.realscenes.tilt --part dev
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np

from training.realscenes.parts import labelled_photos, write_labels

DEGREES = (8.0, 15.0)


def angle_for(name: str) -> float:
    h = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16)
    lo, hi = DEGREES
    magnitude = lo + (hi - lo) * ((h >> 1) % 1000) / 999
    return magnitude if h & 1 else -magnitude


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("dev", "val", "test"), required=True)
    p.add_argument("--root", type=Path, default=Path("build/realscenes"))
    a = p.parse_args()
    src, out = a.root / a.part, a.root / f"tilt-{a.part}"
    (out / "images").mkdir(parents=True, exist_ok=True)
    lines, kept, dropped = [], 0, 0
    for r, img in labelled_photos(src):
        h, w = img.shape[:2]
        deg = angle_for(r["image"])
        m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
        turned = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT)
        plates = []
        for pl in r["plates"]:
            x, y, bw, bh = pl["box"]
            quad = np.array([[x, y], [x + bw, y], [x + bw, y + bh], [x, y + bh]], np.float64)
            q = quad @ m[:, :2].T + m[:, 2]
            x0, y0 = q.min(axis=0)
            x1, y1 = q.max(axis=0)
            if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
                dropped += 1
                continue
            kept += 1
            plates.append({**pl, "box": [round(float(v), 1) for v in (x0, y0, x1 - x0, y1 - y0)],
                           "tilt_deg": round(deg, 1)})
        name = r["image"]
        cv2.imwrite(str(out / name), turned, [cv2.IMWRITE_JPEG_QUALITY, 95])
        lines.append(json.dumps({**r, "plates": plates}))
    write_labels(out, lines)
    print(f"{out}: {len(lines)} photos, {kept} plates ({dropped} left the frame when turned)")


if __name__ == "__main__":
    main()
