"""4K frames made of real ones: the large-frame check of the real-scene sets.

No set here has photos larger than 1,920 px with plates at their native pixels (the sweep's large
frames are upscaled, so their small plates are small at every scale). A 4K camera or a phone
photo puts a distant plate at 60-100 native pixels in a frame the detector sees at a sixth of
its size. This lays the part's 1280x720 dashcam frames (``vigil eval`` folders written by
``build.py``) three by three into 3840x2160 frames, every plate at its native pixels, and
writes them as a ``vigil eval`` folder ``mosaic-<part>``: what a pass over the whole frame loses
to frame size alone, compared with the same plates read in their own frames.

    PYTHONPATH=. .venv/bin/python -m training.realscenes.mosaic --part dev
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from training.realscenes.parts import labelled_photos, write_labels

TILE_W, TILE_H = 1280, 720
GRID = 3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("dev", "val", "test"), required=True)
    p.add_argument("--root", type=Path, default=Path("build/realscenes"))
    p.add_argument("--quality", type=int, default=92, help="JPEG quality of the mosaics")
    a = p.parse_args()
    src = a.root / a.part
    out = a.root / f"mosaic-{a.part}"
    (out / "images").mkdir(parents=True, exist_ok=True)
    frames = [(r, img) for r, img in labelled_photos(src) if img.shape[:2] == (TILE_H, TILE_W)]
    per = GRID * GRID
    lines = []
    for m in range(len(frames) // per):
        canvas = np.zeros((TILE_H * GRID, TILE_W * GRID, 3), np.uint8)
        plates, sources = [], []
        for k, (r, img) in enumerate(frames[m * per : (m + 1) * per]):
            x0, y0 = (k % GRID) * TILE_W, (k // GRID) * TILE_H
            canvas[y0 : y0 + TILE_H, x0 : x0 + TILE_W] = img
            sources.append(r["source"])
            for pl in r["plates"]:
                x, y, w, h = pl["box"]
                plates.append({**pl, "box": [x + x0, y + y0, w, h]})
        name = f"images/mosaic-{a.part}-{m:03d}.jpg"
        cv2.imwrite(str(out / name), canvas, [cv2.IMWRITE_JPEG_QUALITY, a.quality])
        lines.append(json.dumps({"image": name, "source": sources, "plates": plates}))
    write_labels(out, lines)
    print(f"{out}: {len(lines)} frames of {TILE_W * GRID}x{TILE_H * GRID}, "
          f"{sum(len(json.loads(x)['plates']) for x in lines)} plates")


if __name__ == "__main__":
    main()
