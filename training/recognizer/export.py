"""Export the plate recognizer to ``inference/models/ocr.tflite`` + ``ocr.json``.

Route (each step reproducible offline, in the training venv): the PP-OCRv4 recognizer's ONNX
graph from the ``rapidocr-onnxruntime`` 1.4.4 wheel -> head replaced by the plate heads
(``graph.deploy_model``; the fine-tuned heads from ``train_heads.py`` when ``--heads`` is given,
else the pretrained rows for blank/0-9/A-Z) at a fixed 48x240 input -> onnx2tf (float SavedModel)
-> TFLite with int8 weights and float activations (dynamic-range quantisation), whose int8
weights are then stored as float16 behind DEQUANTIZE ops (``float16_weights``: XNNPACK runs
those layers, it does not run dynamic-range ones; 3x faster here, about 2 MB more resident in
the daemon). Full int8
post-training quantisation of this backbone is not used: it fell to 6 % exact on real plates
(``../shared/DEPENDENCIES.md``), see ``docs/models-ocr.md``.

    PYTHONPATH=. .venv-train/bin/python -m training.recognizer.export \
        [--heads training/work/recognizer/heads.npz | --weights FINETUNED.npz] [--name ocr_small]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import numpy as np
import onnx

from training.recognizer import float16_weights, graph

WIDTH = 240
MODEL_DIR = Path("inference/models")
WORK = Path("training/work/recognizer")
NAME = "ocr"
UPSTREAM = (
    "PP-OCRv4 text recognizer (ch_PP-OCRv4_rec_infer.onnx) from the rapidocr-onnxruntime 1.4.4 "
    "wheel; PaddleOCR, Copyright (c) 2020 PaddlePaddle Authors, Apache License 2.0"
)
NORMALISATION = (
    "RGB crop -> BGR, resized to 48 rows keeping its aspect (stretched to at least 160 and "
    "squeezed to at most 240 columns), x/127.5 - 1, zero padding on the right to 48x240; see "
    "inference.ocr.preprocess"
)


def convert(
    onnx_path: Path,
    out_dir: Path,
    quantise: bool = True,
    name: str = NAME,
    input_shape: str | None = None,
) -> Path:
    """ONNX -> float SavedModel (onnx2tf) -> dynamic-range int8 TFLite (or, with ``quantise``
    off, the float32 twin used to measure what quantisation costs); returns the .tflite.
    ``input_shape`` fixes a dynamic input, in onnx2tf's form (``x:1,3,480,640``)."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    with tempfile.TemporaryDirectory() as tmp:
        # onnx2tf fetches a calibration sample unless one lies in its working folder; it is only
        # used for its own int8 output, which is not used here.
        np.save(
            Path(tmp) / "calibration_image_sample_data_20x128x128x3_float32.npy",
            np.zeros((20, 128, 128, 3), np.float32),
        )
        # onnx2tf rewrites the model it is given when it fixes an input shape; give it a copy,
        # never the file inside an installed wheel.
        src = Path(tmp) / onnx_path.name
        shutil.copyfile(onnx_path, src)
        subprocess.run(
            [
                str(bin_dir / "onnx2tf"),
                "-i",
                str(src),
                "-o",
                str((out_dir / "saved_model").resolve()),
                "-osd",
                *(["-ois", input_shape] if input_shape else []),
            ],
            cwd=tmp,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_saved_model(str(out_dir / "saved_model"))
    if quantise:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]  # int8 weights, float activations
    path = out_dir / f"{name}.tflite"
    path.write_bytes(conv.convert())
    return path


def with_entry(training_data: list[dict[str, object]], entry: dict[str, object],
               replaces: str) -> list[dict[str, object]]:
    """``training_data`` with ``entry`` last, in place of any entry whose set name starts with
    ``replaces``: a read-back reader's entry gives way to this run's."""
    return [*(t for t in training_data if not str(t["set"]).startswith(replaces)), entry]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--heads", type=Path, default=None, help="npz from train_heads.py")
    p.add_argument("--weights", type=Path, default=None, help="npz from finetune.py (all weights)")
    p.add_argument("--out", type=Path, default=MODEL_DIR)
    p.add_argument("--name", default=NAME,
                   help="model name: <name>.tflite + <name>.json (ocr_small for the engine's "
                   "small-plate reader)")
    p.add_argument("--float", dest="float32", action="store_true",
                   help="write the float32 twin instead (for the int8-vs-float comparison)")
    p.add_argument("--created", default=date.today().isoformat(), help="the manifest's date")
    p.add_argument("--hybrid", action="store_true",
                   help="keep the int8 weights in dynamic-range (hybrid) layers, as TFLite's "
                   "converter writes them (for the speed comparison)")
    a = p.parse_args()
    base = graph.load()
    regions: list[str] = []
    training_data: list[dict[str, object]] = []
    metrics: dict[str, object] = {}
    overrides: dict[str, np.ndarray] | None = None
    if a.weights:
        w = np.load(a.weights, allow_pickle=False)
        overrides = {k: w[k] for k in w.files if k != "meta"}
        head_w, head_b = overrides.pop(graph.HEAD_W), overrides.pop(graph.HEAD_B)
        region_w, region_b = overrides.pop("region_w"), overrides.pop("region_b")
        meta = json.loads(str(w["meta"]))
        regions = list(meta["regions"])
        training_data = meta["training_data"]
        metrics = meta.get("metrics", {})
        trainer = meta["trainer"]
        eu = meta.get("finetune", {}).get("eu_texts")
        two_row = meta.get("finetune", {}).get("two_row_share")
        if eu:
            # Read-back weights bring their pseudo-text entry along; this run's replaces it.
            training_data = [
                *(t for t in training_data if "recognizer.pseudo_eu" not in str(t["set"])),
                {
                    "set": "openalpr-traindetector-eu-crops with the texts two recognizers read "
                    "alike (training.recognizer.pseudo_eu), drawn with fresh augmentation in "
                    "fine-tuning",
                    "licence": "AGPL-3.0",
                    "count": eu["labelled"],
                },
            ]
        fixes = meta.get("finetune", {}).get("label_fixes")
        if fixes:
            training_data = [
                {**t, "set": f"{t['set']}; the labels of {fixes['photos']} real photos read "
                 f"again by eye (training/recognizer/{fixes['file']})"}
                if str(t["set"]).startswith("openalpr-traindetector-br-crops")
                and "read again" not in str(t["set"]) else t
                for t in training_data
            ]
        if two_row:
            training_data = with_entry(training_data, {
                "set": "two-row plates rendered here (training.synth: Mercosur and grey "
                "Brazilian motorcycle plates, square European plates; training fonts), pasted "
                "on the real-scene dev part or on rendered backgrounds, read with their rows "
                f"side by side; {two_row:.0%} of every batch",
                "licence": "generated (fonts: see ../shared/datasets/fonts/licenses)",
                "count": 0,
            }, replaces="two-row plates")
        mercosur = meta.get("finetune", {}).get("mercosur_share")
        if mercosur:
            training_data = with_entry(training_data, {
                "set": "one-row Mercosur plates (ABC1D23) rendered here (training.synth; "
                "70% lettered in FE-Schrift, GL-Nummernschild, the rest in the training "
                "fonts), pasted on the real-scene dev part or on rendered backgrounds; "
                f"{mercosur:.0%} of every batch",
                "licence": "generated (fonts: see ../shared/datasets/fonts/licenses; "
                "GL-Nummernschild: unlimited permission)",
                "count": 0,
            }, replaces="one-row Mercosur plates")
    elif a.heads:
        h = np.load(a.heads, allow_pickle=False)
        head_w, head_b = h["char_w"], h["char_b"]
        region_w, region_b = h["region_w"], h["region_b"]
        meta = json.loads(str(h["meta"]))
        regions = list(meta["regions"])
        training_data = meta["training_data"]
        metrics = meta.get("metrics", {})
        trainer = meta["trainer"]
    else:
        head_w, head_b = graph.pretrained_plate_head(base)
        region_w = region_b = None
        trainer = "pretrained head rows for blank, 0-9, A-Z (no fine-tuning)"
    WORK.mkdir(parents=True, exist_ok=True)
    onnx_path = WORK / "ocr_deploy.onnx"
    deploy = graph.deploy_model(WIDTH, head_w, head_b, region_w, region_b, overrides)
    onnx.save(deploy, str(onnx_path))
    tfl = convert(onnx_path, WORK, quantise=not a.float32)
    a.out.mkdir(parents=True, exist_ok=True)
    dest = a.out / f"{a.name}.tflite"
    model = tfl.read_bytes()
    if not (a.float32 or a.hybrid):
        model, rewritten = float16_weights.rewrite(model)
        print(f"{rewritten} int8 weight tensors stored as float16 behind DEQUANTIZE")
    dest.write_bytes(model)

    from training.manifest_tools import write_manifest

    labels = {
        "decoder": "ctc",
        "alphabet": graph.ALPHABET,
        "blank": graph.ALPHABET[0],
        "regions": regions,
        "input_hw": [graph.HEIGHT, WIDTH],
        "min_width": graph.MIN_WIDTH,
    }
    write_manifest(
        dest,
        a.name,
        NORMALISATION,
        labels,
        training_data=[{"set": UPSTREAM, "licence": "Apache-2.0", "count": 0}, *training_data],
        licence="AGPL-3.0-or-later (fine-tuned on AGPL-3.0 data); upstream weights Apache-2.0",
        metrics=metrics,
        float_metrics={},
        created=a.created,
        trainer=f"training.recognizer.export: {trainer}",
        output_names=lambda o: "chars" if len(o["shape"]) == 3 else "region",
    )
    print(f"wrote {dest} ({dest.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
