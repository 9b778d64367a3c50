"""Store ``vigil eval``'s end-to-end figures in the model manifests (``metrics``).

Runs the committed models through exactly ``vigil read``'s path on the real-scene sets made by
``build.py`` and writes the summary (overall, by plate width, by region) under
``metrics.real_scene_test``, ``metrics.sweep_test``, ``metrics.real_scene_dev`` and
``metrics.mosaic_4k_test`` (``mosaic.py``: run it first) of ``detector.json``, ``ocr.json``
and ``ocr_small.json`` (end-to-end figures belong to the models that made them together). The
tflite files and their checksums are untouched.

    PYTHONPATH=. .venv/bin/python -m training.realscenes.record [--sets build/realscenes]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2

from inference.engine import DEFAULT_MODEL_DIR, SMALL_READER_MODEL, PlateEngine
from inference.eval_cli import evaluate_folder, write_montage
from inference.evaluation import report
from inference.manifest import parse_manifest

SETS = {
    "real_scene_test": "test",
    "sweep_test": "sweep-test",
    "real_scene_dev": "dev",
    "mosaic_4k_test": "mosaic-test",
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", type=Path, default=Path("build/realscenes"))
    p.add_argument("--montage-dir", type=Path, default=Path("docs/img"))
    a = p.parse_args()
    figures = {}
    engine = PlateEngine.load_still(DEFAULT_MODEL_DIR)
    with engine:
        for key, sub in SETS.items():
            ev, _ = evaluate_folder(a.sets / sub, engine, progress=False)
            rep = report(ev)
            figures[key] = {"set": f"training/realscenes {sub}", **rep}
            if sub != "dev":  # committed as JPEG: a PNG of photos is ten times the size
                png = a.sets / f"eval-failures-{sub}.png"
                if write_montage(a.sets / sub, ev, png):
                    img = cv2.imread(str(png))
                    cv2.imwrite(str(a.montage_dir / f"eval-failures-{sub}.jpg"), img,
                                [cv2.IMWRITE_JPEG_QUALITY, 80])
            print(key, json.dumps({k: v for k, v in rep.items() if not isinstance(v, dict)}))
    for name in ("detector", "ocr", SMALL_READER_MODEL):
        path = DEFAULT_MODEL_DIR / f"{name}.json"
        data = json.loads(path.read_text())
        data["metrics"] = {k: v for k, v in data.get("metrics", {}).items() if k not in SETS}
        data["metrics"].update(figures)
        parse_manifest(data, source=str(path))
        path.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
