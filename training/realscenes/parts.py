"""A ``vigil eval`` folder as the set builders read and write it: ``labels.jsonl`` (one JSON
object per photo) beside the photos it names."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np


def labelled_photos(folder: Path) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
    """Each line of ``folder/labels.jsonl`` with its photo (BGR), in order; a line whose photo
    cannot be read is skipped."""
    for line in (folder / "labels.jsonl").read_text().splitlines():
        r = json.loads(line)
        img = cv2.imread(str(folder / r["image"]), cv2.IMREAD_COLOR)
        if img is not None:
            yield r, img


def write_labels(folder: Path, lines: list[str]) -> None:
    """``folder/labels.jsonl`` from JSON lines."""
    (folder / "labels.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def moved_label(plate: dict[str, Any], x0: float, y0: float) -> dict[str, Any]:
    """``plate``'s label in the pixels of a picture cut from its photo at (``x0``, ``y0``)."""
    x, y, w, h = plate["box"]
    return {**plate, "box": [round(x - x0, 1), round(y - y0, 1), w, h]}
