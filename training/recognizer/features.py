"""Cache the frozen recognizer's sequence features for plate crops, with augmentation.

The pretrained backbone and neck stay frozen; only the heads are trained (``train_heads.py``), so
each training crop is pushed through the network once per augmented copy and its (T, 120) features
are stored. Sources (every one with its licence in the manifest):

* ``us-plate-photos`` (AGPL-3.0): real US crops with text; train split by plate text
  (``training.recognizer.splits.split_of``), region ``us``.
* ``openalpr-traindetector-br-crops`` (AGPL-3.0): real Brazilian crops with text, same split,
  region ``br``.
* ``openalpr-traindetector-eu-crops`` (AGPL-3.0): real European crops without text: region only.
* the real-scene **dev** part (``training/realscenes``; MIT / CC BY 2.0 images): plates cut from
  their scenes with the loose, shifted boxes a detector gives. The test part is never read here.
* ``--synth N``: N synthetic one-row plates (``training.synth``: every US state design, EU and
  Brazilian styles, camera degradations), written to a separate ``features_synth.npz``. Their
  seed stream (``SYNTH_SEED``) differs from the one the bundled sample footage was made with.

Augmentation imitates what the engine hands the reader: loose or tight margins and shifts
(scene plates are re-cut from the full frame), small plates (down- then up-scaling), blur, JPEG,
brightness/contrast, grey (IR night).

    PYTHONPATH=. .venv-train/bin/python -m training.recognizer.features --copies 4
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from training.realscenes.build import load_labels, part_of
from training.recognizer import graph
from training.recognizer.crop_eval import SETS as CROP_SETS
from training.recognizer.splits import DATASETS, labelled

WIDTH = 240
SYNTH_SEED = 20261202
WORK = Path("training/work/recognizer")
REGIONS = ("us", "eu", "br")
ALPHABET = graph.ALPHABET


def _jpeg(img: np.ndarray, q: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else img


# JPEG qualities of the compression augmentation (upper bound excluded), whenever it compresses.
JPEG_QUALITY = (30, 90)
# Narrowest plate, in pixels, that augmentation shrinks a crop to before scaling it back.
SMALL_MIN_WIDTH = 40
SMALL_MAX_WIDTH = 110


@dataclass(frozen=True)
class SmallPlates:
    """How :func:`photometric` makes a crop look like a small, distant plate: ``share`` of the
    crops shrunk to ``min_width`` .. ``max_width`` pixels wide and scaled back; ``jpeg``: the
    share of those compressed while small, as a distant plate in a compressed photo is (blocks
    of 8 of its own pixels), instead of after scaling back up."""

    min_width: int = SMALL_MIN_WIDTH
    max_width: int = SMALL_MAX_WIDTH
    share: float = 0.5
    jpeg: float = 0.0


# Half the crops shrunk to 40-110 px, none compressed while small: the recipe of the readers
# before ``--small-jpeg`` (their draws are the same).
SMALL_PLATES = SmallPlates()


def photometric(
    rng: np.random.Generator, img: np.ndarray, small: SmallPlates = SMALL_PLATES
) -> np.ndarray:
    """Camera-like damage to a BGR crop: a small plate's loss of detail (``small``), blur,
    grey, contrast and brightness, JPEG."""
    out = img
    compressed = False
    if rng.random() < small.share:  # a small, distant plate
        h, w = out.shape[:2]
        target_w = int(rng.uniform(small.min_width, small.max_width))
        if w > target_w:
            s = target_w / w
            shrunk = cv2.resize(
                out, (target_w, max(4, int(h * s))), interpolation=cv2.INTER_AREA
            )
            if small.jpeg and rng.random() < small.jpeg:
                shrunk = _jpeg(shrunk, int(rng.integers(*JPEG_QUALITY)))
                compressed = True
            out = cv2.resize(shrunk, (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.3:
        k = int(rng.choice([3, 5]))
        out = cv2.GaussianBlur(out, (k, k), 0) if rng.random() < 0.5 else cv2.blur(out, (k, 1))
    if rng.random() < 0.2:
        g = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY)
        out = cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)
    a, b = rng.uniform(0.6, 1.3), rng.uniform(-40, 40)
    out = np.clip(out.astype(np.float32) * a + b, 0, 255).astype(np.uint8)
    if not compressed and rng.random() < 0.5:
        out = _jpeg(out, int(rng.integers(*JPEG_QUALITY)))
    return out


# How much looser (or tighter, below 0) than the plate a detector-like cut is, in widths and
# heights, and how far its centre strays, in the same units.
LOOSE = ((-0.05, 0.5), (-0.1, 0.7))
SHIFT = (0.1, 0.15)


def jitter_crop(
    rng: np.random.Generator, img: np.ndarray, box: list[float],
    loose: tuple[tuple[float, float], tuple[float, float]] = LOOSE,
    shift: tuple[float, float] = SHIFT,
) -> np.ndarray:
    """Cut ``box`` from ``img`` the way a detector might: loose or tight, shifted."""
    x, y, w, h = box
    (gw0, gw1), (gh0, gh1) = loose
    gw, gh = rng.uniform(gw0, gw1), rng.uniform(gh0, gh1)
    cx = x + w / 2 + rng.uniform(-shift[0], shift[0]) * w
    cy = y + h / 2 + rng.uniform(-shift[1], shift[1]) * h
    nw, nh = w * (1 + gw), h * (1 + gh)
    x0, y0 = int(max(0, cx - nw / 2)), int(max(0, cy - nh / 2))
    x1 = int(min(img.shape[1], cx + nw / 2))
    y1 = int(min(img.shape[0], cy + nh / 2))
    return img[y0 : max(y1, y0 + 2), x0 : max(x1, x0 + 2)]


def jitter_plate_crop(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """A crop that is already the plate: trim or pad its borders a little."""
    h, w = img.shape[:2]
    pad = cv2.copyMakeBorder(img, h // 3, h // 3, w // 6, w // 6, cv2.BORDER_REPLICATE)
    return jitter_crop(rng, pad, [w // 6, h // 3, w, h])


def items(data: Path) -> list[dict]:
    out: list[dict] = []
    for region, name in CROP_SETS:
        for c in labelled(name, region, data):
            if c.text and c.split == "train":
                out.append(
                    {"path": data / name / c.image, "text": c.text, "region": region,
                     "kind": "crop"}
                )
    eu = data / "openalpr-traindetector-eu-crops"
    for i, line in enumerate((eu / "labels.jsonl").read_text().splitlines()):
        r = json.loads(line)
        if i % 2 == 0:  # half is plenty for a three-way region head
            out.append({"path": eu / r["image"], "text": None, "region": "eu", "kind": "crop"})
    from training.detector.data import load_openimages, load_romanian

    scenes = {s.key: s for s in load_romanian(data) + load_openimages(data)}
    parts = part_of(list(scenes.values()))
    for key, plates in load_labels().items():
        if parts.get(key) != "dev":
            continue
        for p in plates:
            region = p["region"] if p["region"] in REGIONS else None
            if p["text"] is None and region is None:
                continue
            out.append(
                {
                    "path": scenes[key].path,
                    "text": p["text"],
                    "region": region,
                    "kind": "scene",
                    "box": p["box"],
                }
            )
    return out


def synth(sess, n: int) -> None:  # type: ignore[no-untyped-def]
    from inference.ocr import preprocess
    from training.synth.augment import augment_plate
    from training.synth.render import render_plate

    feats, texts, regions = [], [], []
    i = 0
    while len(feats) < n:
        rng = np.random.default_rng([SYNTH_SEED, i])
        i += 1
        plate = render_plate(rng)
        if plate.rows != 1:  # a one-line recognizer; two-row plates are not read (docs)
            continue
        img, corners = augment_plate(rng, plate.image, strength=float(rng.uniform(0.15, 1.0)))
        pts = np.array(corners, np.float32)
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        crop = jitter_crop(rng, img, [float(x0), float(y0), float(x1 - x0), float(y1 - y0)])
        if crop.shape[0] < 2 or crop.shape[1] < 2:
            continue
        x = preprocess(np.ascontiguousarray(crop), graph.HEIGHT, WIDTH, graph.MIN_WIDTH)
        feats.append(sess.run(None, {"x": x.transpose(0, 3, 1, 2)})[0][0].astype(np.float16))
        texts.append(plate.text)
        regions.append(REGIONS.index(plate.region.split("-")[0]))
    np.savez(WORK / "features_synth.npz", feats=np.stack(feats), texts=np.array(texts),
             regions=np.array(regions, np.int8), kinds=np.array(["synth"] * len(feats)))
    print(f"{len(feats)} synthetic samples -> {WORK / 'features_synth.npz'}")


def main() -> None:
    import onnxruntime as ort

    from inference.ocr import preprocess

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--copies", type=int, default=4, help="augmented copies per crop")
    p.add_argument("--scene-copies", type=int, default=8, help="per real-scene dev plate")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data", type=Path, default=DATASETS)
    p.add_argument("--synth", type=int, default=0, help="only make N synthetic plates")
    a = p.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    model_path = WORK / "features.onnx"
    import onnx

    onnx.save(graph.feature_model(WIDTH), str(model_path))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    sess = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(20261202)
    feats, texts, regions, kinds = [], [], [], []
    if a.synth:
        synth(sess, a.synth)
        return
    todo = items(a.data)
    for n, it in enumerate(todo):
        img = cv2.imread(str(it["path"]), cv2.IMREAD_COLOR)
        if img is None:
            continue
        copies = a.scene_copies if it["kind"] == "scene" else a.copies
        for c in range(copies):
            if it["kind"] == "scene":
                crop = jitter_crop(rng, img, it["box"])
            else:
                crop = img if c == 0 else jitter_plate_crop(rng, img)
            if c > 0:
                crop = photometric(rng, crop)
            if crop.shape[0] < 2 or crop.shape[1] < 2:
                continue
            x = preprocess(
                np.ascontiguousarray(crop[:, :, ::-1]), graph.HEIGHT, WIDTH, graph.MIN_WIDTH
            )
            f = sess.run(None, {"x": x.transpose(0, 3, 1, 2)})[0][0]
            feats.append(f.astype(np.float16))
            texts.append(it["text"] or "")
            regions.append(REGIONS.index(it["region"]) if it["region"] else -1)
            kinds.append(it["kind"])
        if n % 500 == 0:
            print(f"{n}/{len(todo)} crops, {len(feats)} samples", flush=True)
    np.savez(
        WORK / "features.npz",
        feats=np.stack(feats),
        texts=np.array(texts),
        regions=np.array(regions, np.int8),
        kinds=np.array(kinds),
    )
    print(f"{len(feats)} samples -> {WORK / 'features.npz'}")


if __name__ == "__main__":
    main()
