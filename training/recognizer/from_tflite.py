"""The plate reader's fine-tuned weights read back out of its committed TFLite file.

The fine-tuned weights behind ``inference/models/ocr.tflite`` were lost with an earlier
session's machine; the file is what remains. It is the upstream ONNX graph
(``graph.deploy_model``) converted by onnx2tf, whose weights survive one to one except where
the converter folded them:

* a convolution's batch norm and the learnable affine (``mobile_one_block_*``: one scale, one
  bias) right after it are folded into its kernel and bias. Unfolding keeps the upstream
  statistics, norm scale and affine, and solves for kernel and bias (or the norm's bias, where
  the convolution has none), so the network computes what the file computes;
* a hard sigmoid's slope and offset are folded into the convolution before it (the clip to
  0..1 stays an op);
* kernels are laid out NHWC (depthwise ones as ``(1, kh, kw, C)``), matmul weights transposed.

ONNX weights and TFLite constants are paired in execution order by kind and size (the two graphs
run the layers in the same order; the region head, which TFLite runs before the character head,
is found by its size). The file stores its weights quantised to int8 (as float16 values), so the
result is the fine-tuned network as shipped, not the one before quantisation. Writes
``finetuned.npz`` (every weight by its ONNX name) for ``finetune.py --init`` and ``heads.npz``
for ``finetune.py --heads``, then checks the rebuilt network against the file on real crops.

    PYTHONPATH=. .venv-train/bin/python -m training.recognizer.from_tflite \
        --out training/work/recognizer_r
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from training.recognizer import graph
from training.recognizer.features import WIDTH
from training.recognizer.trainable import _is_weight

MODEL = Path("inference/models/ocr.tflite")
# TFLite constants that are the converter's own, not weights: hard-swish's 3 and 1/6, and the
# layer norms' epsilon (a scalar of shape ()).
_ARITH_PREFIX = "arith.constant"


@dataclass
class OnnxUnit:
    kind: str  # conv | fc | mul | add
    weight: str
    bias: str | None = None
    bn: tuple[str, str, str, str, float] | None = None  # scale, bias, mean, var, epsilon
    affine: tuple[str, str] | None = None  # scale and bias folded in after the convolution
    hard_sigmoid: tuple[float, float] | None = None  # alpha, beta folded in after those
    shape: tuple[int, ...] = ()


@dataclass
class TfliteUnit:
    kind: str
    op: str
    weight: np.ndarray
    bias: np.ndarray | None = None
    used: bool = field(default=False)


def onnx_units(model: onnx.ModelProto) -> tuple[list[OnnxUnit], dict[str, np.ndarray]]:
    """The deploy graph's weighted layers in execution order, folds marked."""
    weights: dict[str, np.ndarray] = {}
    for n in model.graph.node:
        if n.op_type == "Constant":
            arr = numpy_helper.to_array(n.attribute[0].t)
            if _is_weight(n.output[0], arr):
                weights[n.output[0]] = arr
    nodes = [n for n in model.graph.node if n.op_type != "Constant"]
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def only_consumer(out: str, op_type: str) -> onnx.NodeProto | None:
        users = consumers.get(out, [])
        if len(users) == 1 and users[0].op_type == op_type:
            return users[0]
        return None

    def weight_input(n: onnx.NodeProto) -> str | None:
        ws = [i for i in n.input if i in weights]
        return ws[0] if len(ws) == 1 else None

    units: list[OnnxUnit] = []
    folded: set[int] = set()
    for n in nodes:
        if id(n) in folded:
            continue
        w = weight_input(n) if n.op_type != "Conv" else n.input[1]
        if w is None or w not in weights:
            continue
        if n.op_type == "Conv":
            bias = n.input[2] if len(n.input) > 2 and n.input[2] else None
            unit = OnnxUnit("conv", w, bias, shape=weights[w].shape)
            out = n.output[0]
            bn = only_consumer(out, "BatchNormalization")
            if bn is not None:
                attrs = {a.name: helper.get_attribute_value(a) for a in bn.attribute}
                eps = float(attrs.get("epsilon", 1e-5))
                unit.bn = (bn.input[1], bn.input[2], bn.input[3], bn.input[4], eps)
                folded.add(id(bn))
                out = bn.output[0]
            mul = only_consumer(out, "Mul")
            if mul is not None and weight_input(mul) is not None:
                add = only_consumer(mul.output[0], "Add")
                if add is not None and weight_input(add) is not None:
                    unit.affine = (str(weight_input(mul)), str(weight_input(add)))
                    folded.update((id(mul), id(add)))
                    out = add.output[0]
            hs = only_consumer(out, "HardSigmoid")
            if hs is not None:
                attrs = {a.name: helper.get_attribute_value(a) for a in hs.attribute}
                unit.hard_sigmoid = (float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5)))
            units.append(unit)
        elif n.op_type == "MatMul":
            add = only_consumer(n.output[0], "Add")
            bias = weight_input(add) if add is not None else None
            if add is not None and bias is not None:
                folded.add(id(add))
            units.append(OnnxUnit("fc", w, bias, shape=weights[w].shape))
        elif n.op_type in ("Mul", "Add"):
            units.append(OnnxUnit(n.op_type.lower(), w, shape=weights[w].shape))
        else:
            raise ValueError(f"weight {w} feeds an unexpected {n.op_type}")
    return units, weights


def tflite_units(path: Path) -> list[TfliteUnit]:
    """The TFLite file's weighted ops in execution order, weights as float32."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(str(path), experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    ops = it._get_ops_details()
    details = {d["index"]: d for d in it.get_tensor_details()}
    produced = {o for op in ops for o in op["outputs"]}
    dequantised = {op["outputs"][0]: op["inputs"][0] for op in ops if op["op_name"] == "DEQUANTIZE"}

    def const(index: int) -> np.ndarray | None:
        src = dequantised.get(index, index)
        if index < 0 or src in produced:
            return None
        d = details[src]
        if d["dtype"] not in (np.float32, np.float16) or d["name"].startswith(_ARITH_PREFIX):
            return None
        arr = np.asarray(it.get_tensor(src), np.float32)
        return None if arr.shape == () else arr

    units: list[TfliteUnit] = []
    for op in ops:
        name = op["op_name"]
        ins = [const(i) for i in op["inputs"]]
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            if ins[1] is None:
                continue  # a matmul of two activations
            kind = "fc" if name == "FULLY_CONNECTED" else "conv"
            units.append(TfliteUnit(kind, name, ins[1], ins[2] if len(ins) > 2 else None))
        elif name in ("MUL", "ADD"):
            values = [a for a in ins if a is not None]
            if values:
                units.append(TfliteUnit(name.lower(), name, values[0]))
    return units


def _fits(o: OnnxUnit, t: TfliteUnit, weights: dict[str, np.ndarray]) -> bool:
    if o.kind != t.kind or weights[o.weight].size != t.weight.size:
        return False
    if o.kind == "fc":
        return (o.bias is None) == (t.bias is None)
    return True


def _conv_kernel(o: OnnxUnit, t: TfliteUnit) -> np.ndarray:
    if t.op == "DEPTHWISE_CONV_2D":  # (1, kh, kw, C) -> (C, 1, kh, kw)
        return t.weight.transpose(3, 0, 1, 2)
    return t.weight.transpose(0, 3, 1, 2)  # (O, kh, kw, I) -> (O, I, kh, kw)


def unfold(units: list[OnnxUnit], weights: dict[str, np.ndarray], tfl: list[TfliteUnit],
           lookahead: int = 8) -> dict[str, np.ndarray]:
    """ONNX weight name -> value from the file; the norms' and affines' upstream values kept."""
    out: dict[str, np.ndarray] = {}
    pos = 0
    for o in units:
        match = None
        for k in range(pos, min(len(tfl), pos + lookahead)):
            if not tfl[k].used and _fits(o, tfl[k], weights):
                match = k
                break
        if match is None:
            raise ValueError(f"no TFLite op for {o.kind} {o.weight} {o.shape} near op {pos}")
        t = tfl[match]
        t.used = True
        while pos < len(tfl) and tfl[pos].used:
            pos += 1
        if o.kind == "conv":
            kernel = _conv_kernel(o, t)
            if kernel.shape != o.shape:
                raise ValueError(f"{o.weight}: kernel {kernel.shape}, graph {o.shape}")
            assert t.bias is not None
            # The file's kernel is the graph's times the norm's scale, then the affine's and
            # the hard sigmoid's (``post``); its bias b' = (b - mean) * s_bn + beta, then
            # times ``post`` plus ``post_shift`` (b and mean 0 where there is no norm / bias).
            s_bn = np.ones(o.shape[0], np.float32)
            if o.bn is not None:
                g, _, _, var, eps = o.bn
                s_bn = weights[g] / np.sqrt(weights[var] + eps)
            post, post_shift = 1.0, 0.0
            if o.affine is not None:
                a, c = (float(weights[n].reshape(-1)[0]) for n in o.affine)
                post, post_shift = a, c
            if o.hard_sigmoid is not None:
                alpha, beta_hs = o.hard_sigmoid
                post, post_shift = post * alpha, post_shift * alpha + beta_hs
            scale = s_bn * post
            if np.min(np.abs(scale)) < 1e-6:
                raise ValueError(f"{o.weight}: a folded scale is ~0")
            out[o.weight] = (kernel / scale[:, None, None, None]).astype(np.float32)
            before_post = (t.bias - post_shift) / post
            if o.bn is not None:
                # No convolution bias: the norm's bias carries the file's bias.
                _, beta, mean, _, _ = o.bn
                out[beta] = (before_post + weights[mean] * s_bn).astype(np.float32)
            elif o.bias is not None:
                out[o.bias] = before_post.astype(np.float32)
            else:
                raise ValueError(f"{o.weight}: the file has a bias the graph cannot hold")
        elif o.kind == "fc":
            out[o.weight] = t.weight.T.reshape(o.shape).astype(np.float32)
            if o.bias is not None and t.bias is not None:
                out[o.bias] = t.bias.reshape(weights[o.bias].shape).astype(np.float32)
        else:
            out[o.weight] = t.weight.reshape(o.shape).astype(np.float32)
    left = [t.op for t in tfl if not t.used]
    if left:
        raise ValueError(f"TFLite weights left unpaired: {left}")
    return out


def rebuild(path: Path = MODEL) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every weight of the deploy graph by ONNX name, as the file holds them; and the
    manifest."""
    manifest = json.loads(path.with_suffix(".json").read_text())
    upstream = graph.load()
    head_w, head_b = graph.pretrained_plate_head(upstream)
    regions = len(manifest["labels"]["regions"])
    model = graph.deploy_model(
        WIDTH, head_w, head_b, np.zeros((120, regions), np.float32), np.zeros(regions, np.float32)
    )
    units, weights = onnx_units(model)
    values = unfold(units, weights, tflite_units(path))
    return {**weights, **values}, manifest


def check(values: dict[str, np.ndarray], path: Path, crops: list[np.ndarray]) -> dict[str, float]:
    """The rebuilt network (onnxruntime) against the file on ``crops`` (RGB)."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    from training.recognizer.finetune import HEAD_NAMES, rgb_input

    model = graph.deploy_model(
        WIDTH, values[graph.HEAD_W], values[graph.HEAD_B], values["region_w"], values["region_b"],
        overrides={k: v for k, v in values.items() if k not in HEAD_NAMES},
    )
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    it = Interpreter(str(path))
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    outs = {tuple(d["shape"][1:]): d["index"] for d in it.get_output_details()}
    diffs, agree, region_agree = [], 0, 0
    for crop in crops:
        x = rgb_input(crop)[None]  # (1, 3, 48, 240)
        chars, region = sess.run(["chars", "region"], {sess.get_inputs()[0].name: x})
        it.set_tensor(inp["index"], x.transpose(0, 2, 3, 1))
        it.invoke()
        t_chars = it.get_tensor(outs[tuple(chars.shape[1:])])
        t_region = it.get_tensor(outs[tuple(region.shape[1:])])
        diffs.append(float(np.abs(chars - t_chars).max()))
        agree += int(np.array_equal(chars.argmax(-1), t_chars.argmax(-1)))
        region_agree += int(region.argmax() == t_region.argmax())
    n = max(1, len(crops))
    return {
        "crops": len(crops),
        "max_prob_diff_median": float(np.median(diffs)) if diffs else 0.0,
        "max_prob_diff_max": float(np.max(diffs)) if diffs else 0.0,
        "greedy_path_equal": agree / n,
        "region_equal": region_agree / n,
    }


def main() -> None:
    from training.recognizer.crop_eval import SETS
    from training.recognizer.crop_eval import crops as crop_items
    from training.recognizer.splits import DATASETS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=MODEL)
    p.add_argument("--out", type=Path, default=Path("training/work/recognizer_r"))
    p.add_argument("--check", type=int, default=200, help="val crops to compare on")
    a = p.parse_args()
    values, manifest = rebuild(a.model)
    a.out.mkdir(parents=True, exist_ok=True)
    # What export.py and finetune.py read from a weights file's meta: the file's regions, its
    # training data but the upstream network (export.py names that itself) and its trainer.
    meta = {
        "regions": manifest["labels"]["regions"],
        "training_data": [
            t for t in manifest["training_data"] if not str(t["set"]).startswith("PP-OCRv4")
        ],
        "metrics": {},
        "trainer": f"{manifest['trainer']}; read back from {a.model} (sha256 "
        f"{manifest['sha256'][:12]}) by training.recognizer.from_tflite",
    }
    np.savez(a.out / "finetuned.npz", meta=json.dumps(meta), **values)
    np.savez(
        a.out / "heads.npz",
        meta=json.dumps(meta),
        char_w=values[graph.HEAD_W], char_b=values[graph.HEAD_B],
        region_w=values["region_w"], region_b=values["region_b"],
    )
    items = []
    for _, name in SETS:
        items.extend(img for img, _ in crop_items(DATASETS, name, "val")[: a.check // 2])
    print(json.dumps(check(values, a.model, items)))
    print(f"wrote {a.out / 'finetuned.npz'} and {a.out / 'heads.npz'}")


if __name__ == "__main__":
    main()
