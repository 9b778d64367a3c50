"""Export the fine-tuned plate map to ``inference/models/platemap.tflite`` + manifest.

The trained weights (``training/work/platemap/weights.npz``, by their ONNX names) are written
back into PP-OCRv4's detector graph, its input fixed at 1x3x384x640 (the plate detector's
640x384 letterbox, so a frame is seen at the scale the training crops were cut at), then
converted exactly as the text-line model is (``training.recognizer.export.convert``): onnx2tf,
then TFLite with int8 weights and float activations. Full int8 is not used: this backbone family
does not survive naive full-int8 post-training quantisation (``../shared/DEPENDENCIES.md``).

    PYTHONPATH=. .venv-train/bin/python -m training.platemap.export [--metrics eval.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from training.detector.data import splits, training_sources
from training.textlines.export import UPSTREAM, eval_metrics, export_db, source_onnx

NAME = "platemap"
MODEL_DIR = Path("inference/models")
WORK = Path("training/work/platemap")
INPUT_HW = (384, 640)
NORMALISATION = (
    "grey frame (ITU-R 601 from RGB) replicated to three channels, letterboxed top-left into "
    "640x384 keeping its aspect (area resampling down, linear up), padding 0, x/127.5 - 1; see "
    "inference.textlines.preprocess"
)


def with_weights(model: onnx.ModelProto, weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """``model`` with its weight constants and initializers replaced by ``weights`` (by name);
    every trained weight must land somewhere, with the graph's shape."""
    left = dict(weights)

    def put(name: str, old: np.ndarray) -> onnx.TensorProto | None:
        if name not in left:
            return None
        new = np.asarray(left.pop(name), np.float32)
        if new.shape != old.shape:
            raise ValueError(f"{name}: shape {new.shape}, graph has {old.shape}")
        return numpy_helper.from_array(new, name)

    for n in model.graph.node:
        if n.op_type == "Constant":
            t = put(n.output[0], numpy_helper.to_array(n.attribute[0].t))
            if t is not None:
                n.attribute[0].t.CopyFrom(t)
    for init in model.graph.initializer:
        t = put(init.name, numpy_helper.to_array(init))
        if t is not None:
            init.CopyFrom(t)
    if left:
        raise ValueError(f"weights not in the graph: {sorted(left)[:5]}")
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for d, v in zip(dims, (1, 3, *INPUT_HW), strict=True):
        d.ClearField("dim_param")
        d.dim_value = v
    for d, v in zip(model.graph.output[0].type.tensor_type.shape.dim, (1, 1, *INPUT_HW),
                    strict=True):
        d.ClearField("dim_param")
        d.dim_value = v
    onnx.checker.check_model(model)
    return model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=WORK / "weights.npz")
    p.add_argument("--out", type=Path, default=MODEL_DIR)
    p.add_argument("--metrics", type=Path, default=None, metavar="JSON",
                   help="`vigil eval --json` of the engine with this model on the test part, "
                   "stored in the manifest under real_scene_test")
    p.add_argument("--float", dest="float32", action="store_true",
                   help="write the float32 twin (for the int8-vs-float comparison)")
    a = p.parse_args()
    w = np.load(a.weights)
    model = with_weights(onnx.load(str(source_onnx())), {k: w[k] for k in w.files})
    WORK.mkdir(parents=True, exist_ok=True)
    onnx_path = WORK / f"{NAME}.onnx"
    onnx.save(model, str(onnx_path))
    state_path = a.weights.parent / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    train, _ = splits()
    export_db(
        onnx_path,
        NAME,
        INPUT_HW,
        a.out,
        WORK,
        quantise=not a.float32,
        normalisation=NORMALISATION,
        labels={
            "kind": "db-plate-map",
            "input_hw": list(INPUT_HW),
            "input_colour": "grey",
            "outputs": {"probability": "per-pixel probability of a plate's shrunk core "
                        "(DB shrink ratio 0.4), input resolution"},
        },
        training_data=[
            {"set": UPSTREAM + " (pretrained starting point)", "licence": "Apache-2.0",
             "count": 0},
            *training_sources(train),
            {"set": "synthetic plates (training/synth) and train-split plate photos of "
             "us-plate-photos / openalpr-traindetector-br-crops / -eu-crops pasted with "
             "perspective", "licence": "AGPL-3.0-or-later / see ../shared/datasets/README.md",
             "count": 0},
        ],
        licence="AGPL-3.0-or-later (fine-tuned weights); upstream weights Apache-2.0",
        metrics={"steps": state.get("step"), **eval_metrics(a.metrics)},
        trainer="PYTHONPATH=. .venv-train/bin/python -m training.platemap.train --steps 2000, "
        "then training.platemap.export",
    )

if __name__ == "__main__":
    main()
