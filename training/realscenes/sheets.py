"""Contact sheets for checking the plate labels by eye.

Each sheet shows 32 plate crops (upscaled, with their id and both recognizers' readings) and has
a ``.tsv`` beside it with one line per plate: ``id  proposal  paddle  tesseract``. The proposal is
the agreed reading, else PP-OCRv4's. A person looks at the sheet and writes the reviewed file
(``id  text  region``, ``text`` = ``-`` when a person cannot read every character); ``merge.py``
turns the reviewed files into the committed labels.

    PYTHONPATH=. .venv/bin/python -m training.realscenes.sheets --work training/work/realscenes
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

PER_SHEET = 32
COLS = 4
CELL_W, CELL_H, TEXT_H = 360, 120, 34


def cell(crop: np.ndarray, caption: str) -> np.ndarray:
    out = np.full((CELL_H + TEXT_H, CELL_W, 3), 255, np.uint8)
    h, w = crop.shape[:2]
    s = min((CELL_W - 8) / w, CELL_H / h)
    img = cv2.resize(crop, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_CUBIC)
    out[: img.shape[0], : img.shape[1]] = img
    cv2.putText(out, caption, (4, CELL_H + 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 200), 2)
    return out


def grid(cells: list[np.ndarray], cols: int = COLS) -> np.ndarray:
    """``cells`` in rows of ``cols``, the last row filled with blank cells."""
    cells = cells + [np.full_like(cells[0], 255)] * (-len(cells) % cols)
    return np.vstack([np.hstack(cells[i : i + cols]) for i in range(0, len(cells), cols)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True)
    a = p.parse_args()
    rows = [json.loads(x) for x in (a.work / "candidates.jsonl").read_text().splitlines()]
    out = a.work / "sheets"
    out.mkdir(exist_ok=True)
    for k in range(0, len(rows), PER_SHEET):
        chunk = rows[k : k + PER_SHEET]
        cells, lines = [], []
        for r in chunk:
            crop = cv2.imread(str(a.work / "crops" / f"{r['id']}.png"))
            proposal = r["paddle"] if r["agree"] or r["paddle"] else r["tesseract"]
            cells.append(cell(crop, f"{r['id']}  P:{r['paddle']}  T:{r['tesseract']}"))
            lines.append(f"{r['id']}\t{proposal}\t{r['paddle']}\t{r['tesseract']}")
        name = f"sheet_{k // PER_SHEET:03d}"
        cv2.imwrite(str(out / f"{name}.png"), grid(cells))
        (out / f"{name}.tsv").write_text("\n".join(lines) + "\n")
    print(f"{len(rows)} plates on {(len(rows) + PER_SHEET - 1) // PER_SHEET} sheets in {out}")


if __name__ == "__main__":
    main()
