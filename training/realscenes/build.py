"""Materialise the real-scene evaluation sets for ``vigil eval`` from the committed labels.

Writes, under ``--out`` (default ``build/realscenes``), folders in ``vigil eval``'s format
(``labels.jsonl`` + ``images/``):

* ``test``: the frozen test part, never trained or tuned on. It is the detector's held-out split
  (``training.detector.data``): the last 20 % of each Romanian dashcam video's timeline, and a
  fixed 15 % of the Open Images scenes by SHA-1 of the name.
* ``dev``: every other scene, except the Romanian frames of the 20 s before each test block
  (near-twins of test frames; in neither part). Tune on this. It is the detector's training
  split, so a detector change is not judged on it:
* ``val``: the dev scenes that ``training.detector.train --hold-out-val`` leaves out
  (``training.detector.data.split_validation``), to compare detectors trained that way.
* ``sweep-test`` / ``sweep-dev`` / ``sweep-val``: the scale and framing sweep made from that
  part's scenes: each scene resized so its widest readable plate spans 30 to 500 px (never
  upscaled more than 4x), cut to portrait, square, 4:3 or 16:9 frames of 400 to 1,920 px around
  it, and re-encoded as JPEG of quality 40 to 95. Deterministic (seeded by scene name).

    PYTHONPATH=. .venv/bin/python -m training.realscenes.build [--out build/realscenes]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np

from training.detector.data import (
    DATASETS,
    OPENIMAGES,
    ROMANIAN,
    Scene,
    is_test_openimages,
    load_openimages,
    load_romanian,
    split_romanian,
    split_validation,
)

LABELS = Path(__file__).resolve().parent / "plates.jsonl"
SWEEP_WIDTHS_PX = (30, 45, 60, 80, 100, 140, 200, 300, 500)
ASPECTS = {"portrait-3:4": 0.75, "square": 1.0, "4:3": 4 / 3, "16:9": 16 / 9}
QUALITIES = (40, 60, 75, 95)
MAX_UPSCALE = 4.0


def part_of(scenes: list[Scene]) -> dict[str, str]:
    """Scene key -> ``test`` / ``dev`` / ``gap`` (the detector's held-out rule, see module doc)."""
    out = {s.key: "test" if is_test_openimages(s) else "dev"
           for s in scenes if s.source == OPENIMAGES}
    romanian = [s for s in scenes if s.source == ROMANIAN]
    dev, test = split_romanian(romanian)
    out.update({s.key: "gap" for s in romanian})
    out.update({s.key: "dev" for s in dev})
    out.update({s.key: "test" for s in test})
    return out


def load_labels() -> dict[str, list[dict]]:
    by_scene: dict[str, list[dict]] = defaultdict(list)
    for line in LABELS.read_text().splitlines():
        r = json.loads(line)
        by_scene[r["scene"]].append(r)
    return by_scene


def _plates(scene: Scene, labels: list[dict]) -> list[dict]:
    """Every labelled box of the scene; a box too small to have been cut for review (under 4 px)
    is a plate nobody can read."""
    by_index = {r["box_index"]: r for r in labels}
    out = []
    for i, box in enumerate(scene.plates):
        r = by_index.get(i)
        if r is None:
            out.append(
                {"box": [round(float(v), 1) for v in box], "text": None, "region": "unknown"}
            )
        else:
            out.append({"box": r["box"], "text": r["text"], "region": r["region"]})
    return out


def _tally(counts: Counter[str], plates: list[dict]) -> None:
    counts["images"] += 1
    counts["plates"] += len(plates)
    counts["readable"] += sum(p["text"] is not None for p in plates)


def write_part(out: Path, scenes: list[Scene], labels: dict[str, list[dict]]) -> Counter[str]:
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    with (out / "labels.jsonl").open("w") as fh:
        for s in scenes:
            name = f"images/{s.source}--{s.path.name}"
            shutil.copyfile(s.path, out / name)
            plates = _plates(s, labels.get(s.key, []))
            _tally(counts, plates)
            fh.write(json.dumps({"image": name, "source": s.key, "plates": plates}) + "\n")
    return counts


def _place(rng: np.random.Generator, lo: float, hi: float) -> float:
    """A window origin in [lo, hi]; a plate box that runs off the image can make hi < lo."""
    return lo if hi <= lo else float(rng.uniform(lo, hi))


def _sweep_one(
    img: np.ndarray, plates: list[dict], target_w: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[dict], str, int] | None:
    anchor = max((p for p in plates if p["text"]), key=lambda p: p["box"][2], default=None)
    if anchor is None:
        return None
    scale = target_w / anchor["box"][2]
    if scale > MAX_UPSCALE:
        return None
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    big = cv2.resize(img, None, fx=scale, fy=scale, interpolation=interp)
    H, W = big.shape[:2]
    aspect_name = list(ASPECTS)[int(rng.integers(len(ASPECTS)))]
    aspect = ASPECTS[aspect_name]
    ax, ay, aw, ah = (v * scale for v in anchor["box"])
    win_w = float(rng.uniform(max(400.0, aw * 1.3), max(400.0, aw * 1.3, 1920.0)))
    win_w = min(win_w, W)
    win_h = win_w / aspect
    if win_h > H:
        win_h = H
        win_w = min(W, win_h * aspect)
    if win_w < aw or win_h < ah:
        return None
    x0 = _place(rng, max(0.0, ax + aw - win_w), min(ax, W - win_w))
    y0 = _place(rng, max(0.0, ay + ah - win_h), min(ay, H - win_h))
    x0i, y0i = int(x0), int(y0)
    crop = big[y0i : y0i + int(win_h), x0i : x0i + int(win_w)]
    out_plates = []
    for p in plates:
        bx, by, bw, bh = (v * scale for v in p["box"])
        bx, by = bx - x0i, by - y0i
        ix = max(0.0, min(bx + bw, crop.shape[1]) - max(bx, 0.0))
        iy = max(0.0, min(by + bh, crop.shape[0]) - max(by, 0.0))
        visible = ix * iy / max(bw * bh, 1e-6)
        if visible < 0.3:
            continue
        text = p["text"] if visible > 0.999 else None  # a cut plate cannot be read whole
        out_plates.append(
            {
                "box": [round(bx, 1), round(by, 1), round(bw, 1), round(bh, 1)],
                "text": text,
                "region": p["region"],
            }
        )
    quality = int(QUALITIES[int(rng.integers(len(QUALITIES)))])
    return crop, out_plates, aspect_name, quality


def write_sweep(out: Path, scenes: list[Scene], labels: dict[str, list[dict]]) -> Counter[str]:
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    with (out / "labels.jsonl").open("w") as fh:
        for s in scenes:
            plates = _plates(s, labels.get(s.key, []))
            if not any(p["text"] for p in plates):
                continue
            img = cv2.imread(str(s.path), cv2.IMREAD_COLOR)
            seed = int.from_bytes(hashlib.sha1(s.key.encode()).digest()[:8], "big")
            rng = np.random.default_rng(seed)
            for tw in SWEEP_WIDTHS_PX:
                made = _sweep_one(img, plates, tw, rng)
                if made is None:
                    continue
                crop, ps, aspect, q = made
                name = f"images/{s.source}--{s.path.stem}--w{tw}.jpg"
                ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, q])
                if not ok:
                    raise OSError(f"cannot encode {name}")
                (out / name).write_bytes(buf.tobytes())
                _tally(counts, ps)
                fh.write(
                    json.dumps(
                        {
                            "image": name,
                            "source": s.key,
                            "plates": ps,
                            "sweep": {
                                "plate_width_px": tw,
                                "aspect": aspect,
                                "jpeg_quality": q,
                                "size": [crop.shape[1], crop.shape[0]],
                            },
                        }
                    )
                    + "\n"
                )
    return counts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("build/realscenes"))
    p.add_argument("--data", type=Path, default=DATASETS)
    a = p.parse_args()
    scenes = load_romanian(a.data) + load_openimages(a.data)
    parts = part_of(scenes)
    labels = load_labels()
    stale = [k for k in labels if k not in parts]
    if stale:
        raise SystemExit(f"labels name {len(stale)} scenes that are not in {a.data}: {stale[:3]}")
    dev = [s for s in scenes if parts[s.key] == "dev"]
    val_keys = {s.key for s in split_validation(dev)[1]}
    for part in ("test", "dev", "val"):
        if part == "val":  # a subset of dev: the detector's validation scenes
            chosen = [s for s in dev if s.key in val_keys]
        else:
            chosen = [s for s in scenes if parts[s.key] == part]
        for sub, fn in ((part, write_part), (f"sweep-{part}", write_sweep)):
            dest = a.out / sub
            if dest.exists():
                shutil.rmtree(dest)
            c = fn(dest, chosen, labels)
            print(f"{sub}: {dict(c)}")
    print(f"gap (in neither part): {sum(v == 'gap' for v in parts.values())} scenes")


if __name__ == "__main__":
    main()
