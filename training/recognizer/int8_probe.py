"""Diagnostic: what full int8 (int8 activations too) would do to the committed reader.

Post-training quantisation of the reader as it ships: its float16-stored weights are turned back
into a plain float32 graph, TFLite's calibrator records every activation's range on training
crops (US and Brazilian train splits, never val or test), and the quantiser writes a model with
int8 weights and activations and float input and output, so it drops into a copy of the model
folder unchanged otherwise. ``--float-ops`` leaves those op types in float (the quantiser puts
QUANTIZE / DEQUANTIZE around them), to find where the accuracy goes.

    PYTHONPATH=. .venv-train/bin/python -m training.recognizer.int8_probe OUT_DIR \
        [--float-ops BATCH_MATMUL,MEAN,RSQRT,SOFTMAX,SUB]
    PYTHONPATH=. .venv/bin/python -m training.recognizer.crop_eval --model-dir OUT_DIR

Not the shipped model: the figures are in docs/models-ocr.md ("Full int8").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from inference.ocr import preprocess  # noqa: E402
from training.recognizer.crop_eval import SETS, crops  # noqa: E402
from training.recognizer.splits import DATASETS  # noqa: E402
from training.tflite_ops import op_builtin  # noqa: E402

MODELS = Path("inference/models")


def as_float32(model: bytes) -> bytes:
    """``model`` with each float16 constant behind a DEQUANTIZE op (float16_weights.py) stored
    as the float32 tensor it fed, and those ops dropped: the graph the calibrator can run."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils as fu

    m = fu.convert_bytearray_to_object(bytearray(model))
    dequantize = schema.BuiltinOperator.DEQUANTIZE
    for g in m.subgraphs:
        kept = []
        for op in g.operators:
            src = g.tensors[op.inputs[0]] if op.inputs is not None and len(op.inputs) else None
            if (
                op_builtin(m, op) == dequantize
                and src is not None
                and src.type == schema.TensorType.FLOAT16
                and m.buffers[src.buffer].data is not None
            ):
                values = np.frombuffer(bytes(m.buffers[src.buffer].data), np.float16)
                buf = schema.BufferT()
                buf.data = np.frombuffer(values.astype(np.float32).tobytes(), np.uint8)
                m.buffers.append(buf)
                g.tensors[op.outputs[0]].buffer = len(m.buffers) - 1
                m.buffers[src.buffer].data = None
                continue
            kept.append(op)
        g.operators = kept
    # An opcode no op uses any more may be a version the calibrator's interpreter lacks.
    used = sorted({op.opcodeIndex for g in m.subgraphs for op in g.operators})
    renumber = {old: new for new, old in enumerate(used)}
    m.operatorCodes = [m.operatorCodes[i] for i in used]
    for g in m.subgraphs:
        for op in g.operators:
            op.opcodeIndex = renumber[op.opcodeIndex]
    return bytes(fu.convert_object_to_bytearray(m))


def calibration_inputs(labels: dict[str, Any], n: int, seed: int = 0) -> Iterator[list[Any]]:
    """``n`` train crops of the crop sets, preprocessed as the reader does."""
    items = [c for _, name in SETS for c in crops(DATASETS, name, "train")]
    height, width = labels["input_hw"]
    for i in np.random.default_rng(seed).permutation(len(items))[:n]:
        yield [preprocess(items[int(i)][0], height, width, int(labels["min_width"]))]


def quantise(model: bytes, labels: dict[str, Any], n: int, float_ops: list[str]) -> bytes:
    from tensorflow.lite.python import convert
    from tensorflow.lite.python.optimize import calibrator

    calibrated = calibrator.Calibrator(as_float32(model)).calibrate(
        lambda: calibration_inputs(labels, n)
    )
    out: bytes = convert.mlir_quantize(
        calibrated, fully_quantize=False, denylisted_ops=float_ops or None
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="a new model folder (a copy of --models)")
    p.add_argument("--models", type=Path, default=MODELS)
    p.add_argument("--float-ops", default="", help="comma-separated TFLite op names kept float")
    p.add_argument("--n", type=int, default=300, help="calibration crops")
    a = p.parse_args()
    manifest = json.loads((a.models / "ocr.json").read_text())
    model = quantise(
        (a.models / manifest["file"]).read_bytes(),
        manifest["labels"],
        a.n,
        [s for s in a.float_ops.split(",") if s],
    )
    a.out.mkdir(parents=True, exist_ok=True)
    for f in a.models.iterdir():
        if f.is_file():
            shutil.copy(f, a.out / f.name)
    (a.out / manifest["file"]).write_bytes(model)
    manifest.update(sha256=hashlib.sha256(model).hexdigest(), size_bytes=len(model))
    (a.out / "ocr.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"{a.out / manifest['file']}: {len(model)} bytes, float ops {a.float_ops or 'none'}")


if __name__ == "__main__":
    main()
