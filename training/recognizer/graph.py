"""Surgery on the PP-OCRv4 recognizer's ONNX graph (weights live in ``Constant`` nodes).

* :func:`feature_model`: the network up to the sequence features that feed the CTC head
  (``(1, T, 120)``, T = width / 8), at a fixed input size, for caching features to train heads on.
* :func:`deploy_model`: the same network with the 6,625-class head replaced by a plate head
  (blank + 0-9 + A-Z) and softmax, plus a region head on the time-averaged features, at a fixed
  input size, ready for onnx2tf.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FEATURES = "transpose_51.tmp_0"
HEAD_W, HEAD_B = "linear_85.w_0", "linear_85.b_0"
HEAD_ADD_OUT = "p2o.Add.277"
ALPHABET = "_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # index 0 = CTC blank
HEIGHT = 48
MIN_WIDTH = 160  # chosen on the crop sets' val splits (docs/models-ocr.md)


def wheel_model_path() -> Path:
    import rapidocr_onnxruntime

    return Path(rapidocr_onnxruntime.__file__).parent / "models" / "ch_PP-OCRv4_rec_infer.onnx"


def load() -> onnx.ModelProto:
    return onnx.load(str(wheel_model_path()))


def constant(model: onnx.ModelProto, name: str) -> np.ndarray:
    for n in model.graph.node:
        if n.op_type == "Constant" and n.output[0] == name:
            return numpy_helper.to_array(n.attribute[0].t)
    raise KeyError(name)


def characters(model: onnx.ModelProto) -> list[str]:
    meta = {p.key: p.value for p in model.metadata_props}
    return ["<blank>", *meta["character"].splitlines(), " "]


def pretrained_plate_head(model: onnx.ModelProto) -> tuple[np.ndarray, np.ndarray]:
    """The pretrained head's rows for blank, 0-9 and A-Z: (120, 37) weights and (37,) bias."""
    chars = characters(model)
    keep = [0] + [chars.index(c) for c in ALPHABET[1:]]
    return constant(model, HEAD_W)[:, keep].copy(), constant(model, HEAD_B)[keep].copy()


def _fix_input(model: onnx.ModelProto, width: int) -> None:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for d, v in zip(dims, (1, 3, HEIGHT, width), strict=True):
        d.ClearField("dim_param")
        d.dim_value = v


def feature_model(width: int) -> onnx.ModelProto:
    m = load()
    _fix_input(m, width)
    del m.graph.output[:]
    m.graph.output.append(
        helper.make_tensor_value_info(FEATURES, TensorProto.FLOAT, [1, width // 8, 120])
    )
    return m


def _const(name: str, arr: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(arr, name))


def deploy_model(
    width: int,
    head_w: np.ndarray,
    head_b: np.ndarray,
    region_w: np.ndarray | None = None,
    region_b: np.ndarray | None = None,
    overrides: dict[str, np.ndarray] | None = None,
) -> onnx.ModelProto:
    """Outputs ``chars`` (1, T, 37) softmax and, with a region head, ``region`` (1, R) softmax.

    ``overrides``: new values for the upstream weights by name (from ``finetune.py``).
    """
    m = load()
    _fix_input(m, width)
    g = m.graph
    for n in g.node:
        if overrides and n.op_type == "Constant" and n.output[0] in overrides:
            old = numpy_helper.to_array(n.attribute[0].t)
            new = np.asarray(overrides[n.output[0]], np.float32)
            if new.shape != old.shape:
                raise ValueError(f"{n.output[0]}: shape {new.shape}, graph has {old.shape}")
            n.attribute[0].t.CopyFrom(numpy_helper.from_array(new, n.output[0]))
    nodes = [n for n in g.node if not (n.op_type == "Constant" and n.output[0] in (HEAD_W, HEAD_B))]
    for n in nodes:
        if n.op_type == "Softmax" and n.input[0] == HEAD_ADD_OUT:
            n.output[0] = "chars"
    nodes[:0] = [
        _const(HEAD_W, head_w.astype(np.float32)),
        _const(HEAD_B, head_b.astype(np.float32)),
    ]
    del g.node[:]
    g.node.extend(nodes)
    del g.output[:]
    g.output.append(
        helper.make_tensor_value_info("chars", TensorProto.FLOAT, [1, width // 8, len(ALPHABET)])
    )
    if region_w is not None and region_b is not None:
        g.node.extend(
            [
                _const("region_w", region_w.astype(np.float32)),
                _const("region_b", region_b.astype(np.float32)),
                # Per-step logits, then the mean over time: the same linear map as pooling first,
                # in the shape of the character head (which onnx2tf lays out reliably).
                helper.make_node("MatMul", [FEATURES, "region_w"], ["region_mm"]),
                helper.make_node(
                    "ReduceMean", ["region_mm"], ["region_pool"], axes=[1], keepdims=0
                ),
                helper.make_node("Add", ["region_pool", "region_b"], ["region_logits"]),
                helper.make_node("Softmax", ["region_logits"], ["region"], axis=-1),
            ]
        )
        g.output.append(
            helper.make_tensor_value_info("region", TensorProto.FLOAT, [1, region_w.shape[1]])
        )
    onnx.checker.check_model(m)
    return m
