"""Export PP-OCRv4's pretrained text detector to ``inference/models/textlines.tflite`` + manifest.

The DB ("differentiable binarisation") text detector that ships in the ``rapidocr-onnxruntime``
1.4.4 wheel (``ch_PP-OCRv4_det_infer.onnx``, Apache-2.0) has seen far more text than this
project has plates: it finds the registration on a clear plate in a photo at any scale, where
the small plate detector, trained here on a few hundred scenes, misses close-ups and unfamiliar
plate designs. It is used unchanged (no fine-tuning: ``docs/models-detector.md``) as the engine's
second opinion on still photos where the plate detector finds nothing legible.

Route: the ONNX graph with its input fixed at 1x3x480x640 -> onnx2tf (float SavedModel) ->
TFLite with int8 weights and float activations (dynamic-range quantisation). Full int8 is not
used: this backbone family does not survive naive full-int8 post-training quantisation
(``../shared/DEPENDENCIES.md``). Measured here on a 640x384 input against onnxruntime: the
binary text map at 0.3 agrees on 99.97 % of pixels; 27 ms against 37 ms for float32 on one
thread.

    PYTHONPATH=. .venv-train/bin/python -m training.textlines.export
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from training.recognizer.export import convert

NAME = "textlines"
MODEL_DIR = Path("inference/models")
WORK = Path("training/work/textlines")
INPUT_HW = (480, 640)
UPSTREAM = (
    "PP-OCRv4 text detector (ch_PP-OCRv4_det_infer.onnx) from the rapidocr-onnxruntime 1.4.4 "
    "wheel; PaddleOCR, Copyright (c) 2020 PaddlePaddle Authors, Apache License 2.0"
)
NORMALISATION = (
    "RGB frame -> BGR, letterboxed top-left into 640x480 keeping its aspect (area resampling "
    "down, linear up), padding 0, x/127.5 - 1; see inference.textlines.preprocess"
)


def source_onnx() -> Path:
    import rapidocr_onnxruntime

    return Path(rapidocr_onnxruntime.__file__).parent / "models" / "ch_PP-OCRv4_det_infer.onnx"


def eval_metrics(path: Path | None) -> dict[str, object]:
    """The summary of a `vigil eval --json` report on the test part, for a manifest."""
    if path is None:
        return {}
    rep = json.loads(path.read_text(encoding="utf-8"))
    keep = ("images", "plates", "readable", "exact_read", "top_n", "cer", "det_recall_50",
            "det_recall_70", "median_iou_found", "false_plates_per_image", "calibration_error")
    return {"real_scene_test": {"set": "training/realscenes test, whole engine",
                                **{k: rep[k] for k in keep if k in rep}}}


def export_db(
    onnx_path: Path,
    name: str,
    input_hw: tuple[int, int],
    out_dir: Path,
    work: Path,
    quantise: bool,
    **manifest: Any,
) -> Path:
    """A DB detector graph converted at a fixed input into ``out_dir/<name>.tflite``, with its
    manifest (``manifest``: the rest of :func:`training.manifest_tools.write_manifest`'s
    arguments); its one output is ``probability``."""
    from training.manifest_tools import write_manifest

    work.mkdir(parents=True, exist_ok=True)
    h, w = input_hw
    tfl = convert(onnx_path, work, quantise=quantise, name=name, input_shape=f"x:1,3,{h},{w}")
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / f"{name}.tflite"
    dest.write_bytes(tfl.read_bytes())
    write_manifest(dest, name, float_metrics={}, created="2026-12-02",
                   output_names=lambda o: "probability", **manifest)
    print(f"wrote {dest} ({dest.stat().st_size} bytes)")
    return dest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=MODEL_DIR)
    p.add_argument("--metrics", type=Path, default=None, metavar="JSON",
                   help="`vigil eval --json` output of the engine with this model, stored in "
                   "the manifest under real_scene_test")
    p.add_argument("--float", dest="float32", action="store_true",
                   help="write the float32 twin instead (for the int8-vs-float comparison)")
    a = p.parse_args()
    export_db(
        source_onnx(),
        NAME,
        INPUT_HW,
        a.out,
        WORK,
        quantise=not a.float32,
        normalisation=NORMALISATION,
        labels={
            "kind": "db-text-detector",
            "input_hw": list(INPUT_HW),
            "outputs": {"probability": "per-pixel text probability, input resolution"},
        },
        training_data=[{"set": UPSTREAM, "licence": "Apache-2.0", "count": 0}],
        licence="Apache-2.0 (upstream weights, unchanged; int8 weights)",
        metrics=eval_metrics(a.metrics),
        trainer="training.textlines.export: PYTHONPATH=. .venv-train/bin/python -m "
        "training.textlines.export",
    )

if __name__ == "__main__":
    main()
