"""``vigil eval DATASET``: read every image of a labelled dataset exactly as ``vigil read`` does and
score the reads end to end (``inference.evaluation``), with a montage of failures.

A dataset is a folder with ``labels.jsonl``, one image per line::

    {"image": "images/x.jpg", "plates": [{"box": [x, y, w, h], "text": "B37RYO", "region": "eu"}]}

``text`` is ``null`` for a plate a person cannot read (it counts for localisation only); an image
with ``"plates": []`` has no plate (every read there is a false plate). ``python -m
training.realscenes.build`` makes the real-scene sets (``docs/evaluation.md``).

This is command-line code: it is allowed to write to stdout/stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inference.batch_read import Item, read_image
from inference.engine import PlateEngine
from inference.engine_options import add_engine_arguments, load_engine
from inference.errors import InferenceError
from inference.evaluation import (
    WIDTH_BUCKETS,
    Evaluation,
    ImageResult,
    LabelledImage,
    LabelledPlate,
    PlateOutcome,
    PredictedPlate,
    evaluate,
    failures,
    report,
)
from inference.records import Box
from inference.zone import Zone, ZonedEngine

MONTAGE_TILES = 48
TILE_W, TILE_H, CAPTION_H = 320, 140, 36


class DatasetError(InferenceError, ValueError):
    """A dataset folder or its ``labels.jsonl`` is malformed."""


def load_dataset(folder: Path) -> list[LabelledImage]:
    """Parse ``folder/labels.jsonl``; a malformed line raises :class:`DatasetError` naming it."""
    path = folder / "labels.jsonl"
    if not path.is_file():
        raise DatasetError(f"{path}: no such file (a dataset is a folder with labels.jsonl)")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            plates = tuple(
                LabelledPlate(
                    Box(*(float(v) for v in p["box"])),
                    None if p.get("text") is None else str(p["text"]),
                    str(p.get("region") or "unknown"),
                )
                for p in rec["plates"]
            )
            out.append(LabelledImage(str(rec["image"]), plates))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise DatasetError(f"{path}:{n}: malformed label line: {e!r}") from e
    if not out:
        raise DatasetError(f"{path}: no images")
    return out


def in_zone(img: LabelledImage, zone: Zone) -> LabelledImage:
    """``img`` with only the plates wholly inside ``zone`` (the others are out of scope)."""
    return replace(img, plates=tuple(p for p in img.plates if zone.holds(p.box)))


def to_result(rec: dict[str, Any]) -> ImageResult:
    """A ``vigil read`` JSON record -> :class:`ImageResult`."""
    if "error" in rec:
        return ImageResult(rec["image"], 0.0, (), str(rec["error"]))
    plates = tuple(
        PredictedPlate(
            Box(*p["box"]),
            p["text"],
            float(p["confidence"]),
            tuple(c["text"] for c in p.get("candidates", ())),
        )
        for p in rec["plates"]
    )
    return ImageResult(rec["image"], float(rec["ms"]), plates)


def run_dataset(
    engine: PlateEngine, folder: Path, dataset: list[LabelledImage], progress: bool = True
) -> list[ImageResult]:
    from tqdm import tqdm  # type: ignore[import-untyped]

    results = []
    for img in tqdm(dataset, unit="image", file=sys.stderr, disable=None if progress else True):
        try:
            rec = read_image(engine, Item(folder / img.image, img.image))
        except (InferenceError, OSError, cv2.error) as e:
            rec = {"image": img.image, "error": str(e)}
        results.append(to_result(rec))
    return results


def _caption(tile: np.ndarray, text: str, y: int, scale: float, bgr: tuple[int, int, int]) -> None:
    cv2.putText(tile, text, (4, y), cv2.FONT_HERSHEY_SIMPLEX, scale, bgr, 1)


def _tile(folder: Path, o: PlateOutcome) -> np.ndarray:
    bgr = cv2.imread(str(folder / o.image), cv2.IMREAD_COLOR)
    tile = np.full((TILE_H + CAPTION_H, TILE_W, 3), 255, np.uint8)
    if bgr is None:
        return tile
    t = o.truth.box
    cx, cy = t.cx, t.cy
    half_w, half_h = max(t.w * 1.2, 24.0), max(t.h * 2.0, 16.0)
    x0, y0 = int(max(0, cx - half_w)), int(max(0, cy - half_h))
    x1, y1 = int(min(bgr.shape[1], cx + half_w)), int(min(bgr.shape[0], cy + half_h))
    view = bgr.copy()
    cv2.rectangle(view, (int(t.x), int(t.y)), (int(t.x + t.w), int(t.y + t.h)), (0, 200, 0), 1)
    if o.pred is not None:
        p = o.pred.box
        cv2.rectangle(view, (int(p.x), int(p.y)), (int(p.x + p.w), int(p.y + p.h)), (0, 0, 255), 1)
    crop = view[y0:y1, x0:x1]
    if crop.size:
        s = min(TILE_W / crop.shape[1], TILE_H / crop.shape[0])
        crop = cv2.resize(crop, (max(1, int(crop.shape[1] * s)), max(1, int(crop.shape[0] * s))))
        tile[: crop.shape[0], : crop.shape[1]] = crop
    read = o.pred.text if o.pred is not None else "(no plate)"
    _caption(tile, f"{o.truth.text} > {read}", TILE_H + 16, 0.5, (0, 0, 180))
    _caption(tile, f"IoU {o.iou:.2f}  w {o.truth.box.w:.0f}px  {o.truth.region}", TILE_H + 32,
             0.45, (60, 60, 60))
    return tile


def write_montage(folder: Path, ev: Evaluation, out: Path, cols: int = 6) -> int:
    """PNG of up to ``MONTAGE_TILES`` failures (green: labelled box, red: the read's box)."""
    chosen = failures(ev)
    # Spread over the list (it is sorted by IoU) so misses and misreads both show.
    if len(chosen) > MONTAGE_TILES:
        step = len(chosen) / MONTAGE_TILES
        chosen = [chosen[int(i * step)] for i in range(MONTAGE_TILES)]
    if not chosen:
        return 0
    tiles = [_tile(folder, o) for o in chosen]
    while len(tiles) % cols:
        tiles.append(np.full_like(tiles[0], 255))
    grid = np.vstack([np.hstack(tiles[i : i + cols]) for i in range(0, len(tiles), cols)])
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), grid)
    return len(chosen)


def _fmt(v: float | None, pct: bool = True) -> str:
    if v is None:
        return "-"
    return f"{v * 100:.1f} %" if pct else f"{v:.2f}"


def format_table(rep: dict[str, Any]) -> str:
    lines = [
        f"images {rep['images']}, plates {rep['plates']} ({rep['readable']} readable, "
        f"{rep['unreadable']} unreadable), errors {rep['errors']}",
        f"exact read (top-1) {_fmt(rep['exact_read'])}   truth in top-N {_fmt(rep['top_n'])}   "
        f"CER {_fmt(rep['cer'])}",
        f"plate found IoU>=0.5 {_fmt(rep['det_recall_50'])} "
        f"(readable plates {_fmt(rep['det_recall_50_readable'])})   IoU>=0.7 "
        f"{_fmt(rep['det_recall_70'])}   "
        f"median IoU of found {_fmt(rep['median_iou_found'], False)}",
        f"false plates per image {_fmt(rep['false_plates_per_image'], False)}   "
        f"calibration error {_fmt(rep['calibration_error'], False)}",
        f"ms per image: median {rep['ms_median']}  p95 {rep['ms_p95']}",
        "",
        f"{'group':<14}{'plates':>7}{'readable':>9}{'exact':>9}{'top-N':>9}{'CER':>8}"
        f"{'IoU>=.5':>9}{'IoU>=.7':>9}",
    ]
    groups = [(f"width {k}", v) for k, v in rep["by_width"].items()]
    groups += [(f"region {k}", v) for k, v in rep["by_region"].items()]
    for name, g in groups:
        lines.append(
            f"{name:<14}{g['plates']:>7}{g['readable']:>9}{_fmt(g['exact_read']):>9}"
            f"{_fmt(g['top_n']):>9}{_fmt(g['cer']):>8}{_fmt(g['det_recall_50']):>9}"
            f"{_fmt(g['det_recall_70']):>9}"
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dataset", type=Path, metavar="DATASET", help="folder with labels.jsonl and its images"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    add_engine_arguments(parser)
    parser.add_argument(
        "--zone",
        type=Zone.parse,
        default=None,
        metavar="X,Y,W,H",
        help="read only this part of each photo, as the daemon's [inference] zone_* does; "
        "plates not wholly inside it are left out of the scoring",
    )
    parser.add_argument(
        "--montage",
        type=Path,
        default=None,
        metavar="PNG",
        help="failure montage (default: eval-failures-<dataset>.png here)",
    )
    parser.add_argument(
        "--predictions",
        type=Path,
        default=None,
        metavar="JSONL",
        help="also write every per-image read record here",
    )


def evaluate_folder(
    folder: Path, engine: PlateEngine, progress: bool = True
) -> tuple[Evaluation, list[ImageResult]]:
    dataset = load_dataset(folder)
    results = run_dataset(engine, folder, dataset, progress)
    return evaluate(dataset, results), results


def run(args: argparse.Namespace) -> int:
    """0 when the dataset was scored, 2 when it could not start (bad dataset or models)."""
    try:
        dataset = load_dataset(args.dataset)
        if args.zone is not None:
            dataset = [in_zone(img, args.zone) for img in dataset]
        engine: Any = load_engine(args)
    except (InferenceError, ValueError) as e:
        print(f"vigil eval: {e}", file=sys.stderr)
        return 2
    if args.zone is not None:
        engine = ZonedEngine(engine, args.zone)
    try:
        results = run_dataset(engine, args.dataset, dataset)
    finally:
        engine.close()
    ev = evaluate(dataset, results)
    rep = report(ev)
    rep["dataset"] = str(args.dataset)
    rep["country"] = args.country
    montage = args.montage or Path(f"eval-failures-{args.dataset.resolve().name}.png")
    rep["montage"] = str(montage) if write_montage(args.dataset, ev, montage) else None
    rep["width_buckets_px"] = [name for name, _, _ in WIDTH_BUCKETS]
    if args.predictions:
        with args.predictions.open("w", encoding="utf-8") as fh:
            for r in results:
                fh.write(
                    json.dumps(
                        {
                            "image": r.image,
                            "ms": r.ms,
                            "error": r.error,
                            "plates": [
                                {
                                    "box": [p.box.x, p.box.y, p.box.w, p.box.h],
                                    "text": p.text,
                                    "confidence": p.confidence,
                                }
                                for p in r.plates
                            ],
                        }
                    )
                    + "\n"
                )
    if args.json:
        print(json.dumps(rep))
    else:
        print(format_table(rep))
        if rep["montage"]:
            print(f"failure montage: {rep['montage']}")
    return 0
