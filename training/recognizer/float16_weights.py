"""Give a dynamic-range TFLite model's int8 weights to XNNPACK: store them as float16.

Dynamic-range quantisation (int8 weights, float activations) turns each convolution and fully
connected layer into a "hybrid" kernel that quantises its input on the fly. XNNPACK, the
interpreter's fast CPU path, does not run those, so they fall back to TFLite's own kernels
between XNNPACK partitions: on the 2-core x86 machine of 2026-12-03 the reader took 68.6 ms a
crop that way against 22 ms for float32 weights (docs/models-ocr.md, "Cost"). XNNPACK does run
float16 weights behind a ``DEQUANTIZE`` op, packing them once at load.

This rewrites every hybrid layer's int8 weight tensor into a float16 constant holding the same
values (``(q - zero_point) * scale`` per channel: the int8 grid the quantiser chose, rounded to
float16, a relative error under 0.05 %) and a ``DEQUANTIZE`` op that feeds the layer its float32
weights; the layer becomes a float one. The file grows from int8 to float16 weights (2.1 -> 3.9
MB for the reader); the interpreter alone holds 0.3 MB more than the hybrid build, the daemon
about 2 MB more (the larger file's pages stay resident). Activations are no longer quantised on
the fly, which is a little more precise.

    PYTHONPATH=. .venv-train/bin/python -m training.recognizer.float16_weights IN.tflite OUT.tflite

``export.py`` applies it to every reader it writes (``--hybrid`` keeps the hybrid file).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from training.tflite_ops import builtin_code, op_builtin

HYBRID_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
DEQUANTIZE_FLOAT16_VERSION = 3  # the DEQUANTIZE op version that takes float16 input


def rewrite(model: bytes) -> tuple[bytes, int]:
    """The model with its hybrid layers' int8 weights stored as float16 behind DEQUANTIZE,
    and how many weight tensors were rewritten."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils as fu

    m = fu.convert_bytearray_to_object(bytearray(model))
    ops = schema.BuiltinOperator
    hybrid = {getattr(ops, name) for name in HYBRID_OPS}
    dequantize = _opcode(m, schema, ops.DEQUANTIZE)
    rewritten = 0
    replaced_buffers: list[int] = []
    for g in m.subgraphs:
        operators: list[Any] = []
        for op in g.operators:
            weight = op.inputs[1] if len(op.inputs) > 1 else -1
            if op_builtin(m, op) in hybrid and weight >= 0:
                t = g.tensors[weight]
                # A weight shared by two layers is float32 after the first rewrite.
                if _is_int8_constant(m, t, schema):
                    operators.append(_float16_behind_dequantize(m, g, weight, dequantize, schema))
                    replaced_buffers.append(t.buffer)
                    t.type = schema.TensorType.FLOAT32
                    t.quantization = None
                    m.buffers.append(schema.BufferT())
                    t.buffer = len(m.buffers) - 1
                    rewritten += 1
            operators.append(op)
        g.operators = operators
    used = {t.buffer for g in m.subgraphs for t in g.tensors}
    for b in replaced_buffers:
        if b not in used:
            m.buffers[b].data = None
    return bytes(fu.convert_object_to_bytearray(m)), rewritten


def _opcode(m: Any, schema: Any, builtin: int) -> int:
    for i, oc in enumerate(m.operatorCodes):
        if builtin_code(oc) == builtin:
            oc.version = max(oc.version, DEQUANTIZE_FLOAT16_VERSION)
            return i
    oc = schema.OperatorCodeT()
    oc.builtinCode = builtin
    oc.deprecatedBuiltinCode = min(builtin, 127)
    oc.version = DEQUANTIZE_FLOAT16_VERSION
    m.operatorCodes.append(oc)
    return len(m.operatorCodes) - 1


def _is_int8_constant(m: Any, t: Any, schema: Any) -> bool:
    q = t.quantization
    return (
        t.type == schema.TensorType.INT8
        and q is not None
        and q.scale is not None
        and len(q.scale) > 0
        and m.buffers[t.buffer].data is not None
    )


def _float16_behind_dequantize(m: Any, g: Any, weight: int, dequantize: int, schema: Any) -> Any:
    """A new float16 constant with ``weight``'s values and the DEQUANTIZE op that writes them
    into ``weight`` (which the caller turns into a plain float32 tensor)."""
    t = g.tensors[weight]
    q = t.quantization
    data = np.frombuffer(bytes(m.buffers[t.buffer].data), np.int8).reshape(t.shape)
    scale = np.asarray(q.scale, np.float32)
    zero = np.asarray(q.zeroPoint if q.zeroPoint is not None else np.zeros(len(scale)), np.float32)
    shape = [1] * data.ndim
    if len(scale) > 1:
        shape[q.quantizedDimension] = len(scale)
    values = (data.astype(np.float32) - zero.reshape(shape)) * scale.reshape(shape)
    buf = schema.BufferT()
    buf.data = np.frombuffer(values.astype(np.float16).tobytes(), np.uint8)
    m.buffers.append(buf)
    stored = schema.TensorT()
    stored.shape = list(t.shape)
    stored.type = schema.TensorType.FLOAT16
    stored.name = (t.name or b"weight") + b"/float16"
    stored.buffer = len(m.buffers) - 1
    g.tensors.append(stored)
    op = schema.OperatorT()
    op.opcodeIndex = dequantize
    op.inputs = [len(g.tensors) - 1]
    op.outputs = [weight]
    return op


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    a = p.parse_args()
    out, n = rewrite(a.src.read_bytes())
    a.dst.write_bytes(out)
    print(f"{a.dst}: {n} weight tensors as float16 ({len(out)} bytes)")


if __name__ == "__main__":
    main()
