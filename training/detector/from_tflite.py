"""Keras weights for the detector read back out of its committed int8 TFLite file.

The Keras checkpoints of the committed detector were lost with an earlier session's machine;
the int8 file is what remains. Its graph is the Keras graph with each batch norm folded into
the convolution before it and the ReLU6 fused into the op, so every convolution's int8 kernel
(per output channel scales) and int32 bias dequantise to float weights of the same network:
the kernel goes to the Keras convolution, the bias to the batch norm after it (gamma 1, mean 0,
variance ``1 - epsilon``, so the norm is the identity plus that bias). Convolutions are paired
with Keras layers by walking both graphs back from the named outputs, not by order (the four
heads have identical shapes). A fine-tune from these weights must keep the batch norms frozen
(``training.detector.train --freeze-bn``): batch statistics would undo the folding.

    PYTHONPATH=. .venv-train/bin/python -m training.detector.from_tflite \
        --out training/work/detector_r/init.weights.h5

Checks the result against the int8 file on training frames and prints the agreement.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from training.detector.model import build  # noqa: E402
from training.detector.sampler import CROP  # noqa: E402
from training.detector.spec import INPUT_HW  # noqa: E402
from training.tflite_ops import op_builtin  # noqa: E402

MODEL = Path("inference/models/detector.tflite")
# Ops the int8 graph adds around the Keras layers: (de)quantisation, the heatmap's sigmoid and
# the upsampling spelt RESHAPE + TILE. Walking back, each passes to its first input.
_PASS_THROUGH = {"QUANTIZE", "DEQUANTIZE", "LOGISTIC", "RESHAPE", "TILE"}
_KERAS_PASS_THROUGH = {"BatchNormalization", "ReLU", "Activation", "UpSampling2D"}


@dataclass(frozen=True)
class Op:
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


def _graph(model: bytes) -> tuple[Any, list[Op], dict[str, int]]:
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils as fu

    m = fu.convert_bytearray_to_object(bytearray(model))
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    g = m.subgraphs[0]
    ops = [
        Op(names[op_builtin(m, op)], tuple(int(i) for i in op.inputs),
           tuple(int(i) for i in op.outputs))
        for op in g.operators
    ]
    (sig,) = m.signatureDefs
    outputs = {t.name.decode() if isinstance(t.name, bytes) else t.name: int(t.tensorIndex)
               for t in sig.outputs}
    return m, ops, outputs


def _const(m: Any, index: int) -> tuple[np.ndarray, np.ndarray, int]:
    """A constant tensor's stored values, its per-channel scales and quantised axis."""
    t = m.subgraphs[0].tensors[index]
    dtype = {9: np.int8, 2: np.int32}[int(t.type)]  # TensorType INT8, INT32
    data = np.frombuffer(bytes(m.buffers[t.buffer].data), dtype).reshape(t.shape)
    q = t.quantization
    return data, np.asarray(q.scale, np.float64), int(q.quantizedDimension)


def _dequantised(m: Any, index: int) -> np.ndarray:
    data, scale, axis = _const(m, index)
    shape = [1] * data.ndim
    shape[axis] = -1
    return (data.astype(np.float64) * scale.reshape(shape)).astype(np.float32)


def _keras_producer(tensor: Any) -> Any:
    return tensor._keras_history.operation  # noqa: SLF001 (Keras 3 functional graph)


def _keras_inputs(layer: Any) -> list[Any]:
    node = layer._inbound_nodes[0]  # noqa: SLF001
    return list(node.input_tensors)


def pair_convolutions(
    ops: list[Op], outputs: dict[str, int], keras_model: Any
) -> list[tuple[int, Any]]:
    """(op index, Keras layer) for every convolution, found by walking back from the outputs."""
    producer = {t: i for i, op in enumerate(ops) for t in op.outputs}
    pairs: dict[int, Any] = {}
    seen: set[tuple[int, int]] = set()

    def walk(tensor: int, kt: Any) -> None:
        key = (tensor, id(kt))
        if key in seen:
            return
        seen.add(key)
        i = producer.get(tensor)
        while i is not None and ops[i].name in _PASS_THROUGH:
            tensor = ops[i].inputs[0]
            i = producer.get(tensor)
        layer = _keras_producer(kt)
        while type(layer).__name__ in _KERAS_PASS_THROUGH:
            kt = _keras_inputs(layer)[0]
            layer = _keras_producer(kt)
        kind = type(layer).__name__
        if i is None:
            if kind != "InputLayer":
                raise ValueError(f"graph input met at Keras layer {layer.name}")
            return
        op = ops[i]
        expected = {"CONV_2D": "Conv2D", "DEPTHWISE_CONV_2D": "DepthwiseConv2D", "ADD": "Add"}
        if expected.get(op.name) != kind:
            raise ValueError(f"op {i} {op.name} met Keras layer {layer.name} ({kind})")
        if kind == "Add":
            for a, b in zip(op.inputs, _keras_inputs(layer), strict=True):
                walk(a, b)
            return
        if i in pairs and pairs[i] is not layer:
            raise ValueError(f"op {i} paired with two Keras layers")
        pairs[i] = layer
        walk(op.inputs[0], _keras_inputs(layer)[0])

    for name, tensor in outputs.items():
        walk(tensor, keras_model.get_layer(name).output)
    convs = [i for i, op in enumerate(ops) if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    if sorted(pairs) != convs:
        raise ValueError(f"paired {len(pairs)} of {len(convs)} convolutions")
    return sorted(pairs.items())


def _norm_after(layer: Any, keras_model: Any) -> Any | None:
    for other in keras_model.layers:
        if type(other).__name__ == "BatchNormalization" and _keras_producer(
            _keras_inputs(other)[0]
        ) is layer:
            return other
    return None


def load_into(model_bytes: bytes, keras_model: Any) -> int:
    """Set ``keras_model``'s weights from the int8 file; the number of convolutions set."""
    m, ops, outputs = _graph(model_bytes)
    pairs = pair_convolutions(ops, outputs, keras_model)
    for i, layer in pairs:
        op = ops[i]
        kernel = _dequantised(m, op.inputs[1])  # (out, kh, kw, in) or (1, kh, kw, channels)
        bias = _dequantised(m, op.inputs[2])
        k = np.transpose(kernel, (1, 2, 3, 0))  # Keras: (kh, kw, in, out) / (kh, kw, ch, 1)
        norm = _norm_after(layer, keras_model)
        if norm is None:
            layer.set_weights([k, bias])
            continue
        layer.set_weights([k])
        eps = float(norm.epsilon)
        n = bias.shape[0]
        norm.set_weights([np.ones(n, np.float32), bias, np.zeros(n, np.float32),
                          np.full(n, 1.0 - eps, np.float32)])
    return len(pairs)


def agreement(model_path: Path, keras_model: Any, frames: list[np.ndarray]) -> dict[str, float]:
    """How far the rebuilt float network is from the int8 file on ``frames`` (input-size grey
    images, 0..1)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(model_path), num_threads=1)
    it.allocate_tensors()
    (inp,) = it.get_input_details()
    runner = it.get_signature_runner()
    (input_name,) = runner.get_input_details()
    out_quant = {k: v["quantization"] for k, v in runner.get_output_details().items()}
    s, z = inp["quantization"]
    diffs: dict[str, list[float]] = {}
    for x in frames:
        q = np.clip(np.round(x / s + z), -128, 127).astype(np.int8)[None, :, :, None]
        out = runner(**{input_name: q})
        ref = keras_model(x[None, :, :, None].astype(np.float32), training=False)
        for name, arr in out.items():
            scale, zero = out_quant[name]
            got = (arr.astype(np.float32) - zero) * scale
            want = np.asarray(ref[name])
            diffs.setdefault(name, []).append(float(np.abs(got - want).max()))
    return {k: max(v) for k, v in diffs.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=MODEL)
    p.add_argument("--out", type=Path, required=True, help="Keras weights file (.weights.h5)")
    a = p.parse_args(argv)
    from training.detector.export import representative

    data = a.model.read_bytes()
    full = build(INPUT_HW, batch_size=1)
    n = load_into(data, full)
    frames = [batch[0][0, :, :, 0] for batch in representative(n=8, seed=1)]
    worst = agreement(a.model, full, frames)
    crop = build((CROP, CROP))
    crop.set_weights(full.get_weights())
    a.out.parent.mkdir(parents=True, exist_ok=True)
    crop.save_weights(str(a.out))
    print(json.dumps({"convolutions": n, "max_abs_diff_vs_int8": worst, "out": str(a.out)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
