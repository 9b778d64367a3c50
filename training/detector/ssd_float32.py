"""Rebuild the pretrained vehicle SSD as a float32 TFLite graph with a signature.

MediaPipe ships the SSD (``pretrained_vehicles.MODEL_NAME``) with float16 weights, each behind a
``DEQUANTIZE`` op. Post-training quantisers (ai-edge-quantizer, TFLite's converter) want float32
constants and a signature to calibrate through, so this writes each float16 constant back as
float32 into the tensor its ``DEQUANTIZE`` produced, drops those ops, names the graph's input and
outputs in a ``serving_default`` signature and empties the float16 buffers nothing reads any
more. The arithmetic is unchanged: the same weights, widened. The first step towards an int8
vehicle detector (docs/models-detector.md, "Its int8 conversion, measured"); the quantisation
itself is not part of this project's tools.

    PYTHONPATH=. .venv-train/bin/python -m training.detector.ssd_float32 \\
        [--model training/work/vehicles/object_detection_ssd_mobilenetv2_oidv4_fp16.tflite] \\
        --out training/work/vehicles/ssd_float32.tflite

Then ``training.detector.pretrained_vehicles --model OUT`` measures it (the same AP50 as the
shipped file).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from training.detector.pretrained_vehicles import MODEL_NAME

WORK = Path("training/work/vehicles")
SIGNATURE = "serving_default"


def widen(model: Any, schema: Any) -> int:
    """Every float16 constant feeding a ``DEQUANTIZE`` written as float32 into that op's output,
    and the op dropped; returns how many. ``model`` is a ``ModelT`` (flatbuffer object API)."""
    dequantize = {
        i for i, oc in enumerate(model.operatorCodes)
        if max(oc.builtinCode, oc.deprecatedBuiltinCode) == schema.BuiltinOperator.DEQUANTIZE
    }
    widened = 0
    for graph in model.subgraphs:
        kept = []
        for op in graph.operators:
            if op.opcodeIndex in dequantize:
                src, dst = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
                data = model.buffers[src.buffer].data
                if src.type == schema.TensorType.FLOAT16 and data is not None and len(data):
                    wide = np.frombuffer(bytes(data), np.float16).astype(np.float32)
                    buf = schema.BufferT()
                    buf.data = np.frombuffer(wide.tobytes(), np.uint8)
                    model.buffers.append(buf)
                    dst.buffer = len(model.buffers) - 1
                    widened += 1
                    continue
            kept.append(op)
        graph.operators = kept
    return widened


def add_signature(model: Any, schema: Any) -> None:
    """A ``serving_default`` signature over the first graph: ``input``, ``out0``, ``out1``, ..."""
    graph = model.subgraphs[0]

    def tensor_map(name: str, index: int) -> Any:
        t = schema.TensorMapT()
        t.name, t.tensorIndex = name, index
        return t

    sig = schema.SignatureDefT()
    sig.signatureKey, sig.subgraphIndex = SIGNATURE, 0
    sig.inputs = [tensor_map("input", graph.inputs[0])]
    sig.outputs = [tensor_map(f"out{i}", o) for i, o in enumerate(graph.outputs)]
    model.signatureDefs = [sig]


def drop_unread_buffers(model: Any) -> None:
    """Empty the buffers of tensors no op or graph reads (the float16 copies), keeping every
    buffer and tensor index as it is."""
    read: set[int] = set()
    for graph in model.subgraphs:
        tensors = {i for op in graph.operators for i in op.inputs if i >= 0}
        tensors |= set(graph.inputs) | set(graph.outputs)
        read |= {graph.tensors[i].buffer for i in tensors}
    for i, buf in enumerate(model.buffers):
        if i not in read:
            buf.data = None


def main() -> None:
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=WORK / MODEL_NAME)
    p.add_argument("--out", type=Path, default=WORK / "ssd_float32.tflite")
    a = p.parse_args()
    model = flatbuffer_utils.read_model(str(a.model))
    n = widen(model, schema)
    add_signature(model, schema)
    drop_unread_buffers(model)
    flatbuffer_utils.write_model(model, str(a.out))
    print(f"{n} float16 constants widened; wrote {a.out} ({a.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
