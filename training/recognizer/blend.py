"""Blend two fine-tuned readers weight by weight: ``start + share * (tuned - start)``.

A fine-tune that teaches the reader something new (two-row plates) also moves what it already
read well; taking only part of the way from the starting weights to the tuned ones keeps more of
the start's behaviour and part of the new skill ("WiSE-FT": weight-space ensembles of a model
and its fine-tuned self). Both files must hold the same weights (``finetune.py`` output, or
``from_tflite.py``'s read-back). The meta is the tuned file's, its trainer line extended.

    PYTHONPATH=. .venv-train/bin/python -m training.recognizer.blend \
        training/work/recognizer_r/finetuned.npz training/work/recognizer_r/tr/finetuned.npz \
        --share 0.5 --out training/work/recognizer_r/blend.npz
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def blend(start: dict[str, np.ndarray], tuned: dict[str, np.ndarray],
          share: float) -> dict[str, np.ndarray]:
    """``start + share * (tuned - start)`` for every weight; both must name the same ones."""
    if set(start) != set(tuned):
        raise ValueError(f"different weights: {sorted(set(start) ^ set(tuned))[:5]}")
    return {
        k: (start[k] + share * (tuned[k] - start[k])).astype(np.float32) for k in sorted(start)
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("start", type=Path)
    p.add_argument("tuned", type=Path)
    p.add_argument("--share", type=float, required=True, help="0 = start, 1 = tuned")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    if not 0.0 <= a.share <= 1.0:
        p.error("--share must be 0..1")
    s, t = np.load(a.start), np.load(a.tuned)
    values = blend({k: s[k] for k in s.files if k != "meta"},
                   {k: t[k] for k in t.files if k != "meta"}, a.share)
    meta = json.loads(str(t["meta"]))
    meta["trainer"] = (
        f"{meta['trainer']}; then blended {a.share:g} of the way from {a.start} to those "
        f"weights (training.recognizer.blend)"
    )
    meta.setdefault("finetune", {})["blend_share"] = a.share
    np.savez(a.out, meta=json.dumps(meta), **values)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
