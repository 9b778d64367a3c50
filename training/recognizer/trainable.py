"""Run an ONNX graph in TensorFlow with its weights as variables, so it can be fine-tuned.

The PP-OCRv4 recognizer ships only as an ONNX inference graph: onnx2torch cannot convert it and
onnx2tf freezes its weights (``../shared/DEPENDENCIES.md``). Rather than re-implement PPLCNetV3 +
SVTR by hand and load the weights by name, this executes the graph node by node with TensorFlow
ops (about two dozen op types occur in it), every weight ``Constant`` becoming a ``tf.Variable``.
After training, :meth:`OnnxNet.weights` gives the new values by their ONNX names; they are written
back into the same graph (``graph.deploy_model(..., overrides=...)``) and converted exactly as the
untuned model is, so the deployed network is the upstream graph with new numbers in it.

Layout stays NCHW as in ONNX; convolutions transpose to NHWC around the TensorFlow op (the CPU
kernels only take NHWC). Batch normalisation runs with its stored statistics (inference mode):
the fine-tuning batches are too small and too uniform to re-estimate them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import onnx
import tensorflow as tf
from onnx import helper, numpy_helper

_ONNX_TO_TF = {1: tf.float32, 6: tf.int32, 7: tf.int64, 9: tf.bool, 11: tf.float64}


def _is_weight(name: str, arr: np.ndarray) -> bool:
    # Paddle's exporter names its parameters after their layer (conv2d_10.w_0, linear_85.b_0,
    # mobile_one_block_0.w_1); its own helper constants (axes, shapes, clip bounds) are p2o.*.
    return arr.dtype == np.float32 and not name.startswith("p2o.")


class OnnxNet(tf.Module):
    """An ONNX graph as a callable TensorFlow module.

    ``trainable(name)`` decides which weights get gradients (default: all but the batch-norm
    statistics).
    """

    def __init__(
        self, model: onnx.ModelProto, trainable: Callable[[str], bool] | None = None
    ) -> None:
        super().__init__()
        stats = {
            i
            for n in model.graph.node
            if n.op_type == "BatchNormalization"
            for i in n.input[3:5]
        }
        self._consts: dict[str, object] = {}
        self._vars: dict[str, tf.Variable] = {}
        self._nodes = []
        for init in model.graph.initializer:
            arr = numpy_helper.to_array(init)
            if _is_weight(init.name, arr):
                train = trainable is None or trainable(init.name)
                v = tf.Variable(arr, trainable=train, name=init.name.replace(".", "_"))
                self._vars[init.name] = v
                self._consts[init.name] = v
            else:
                self._consts[init.name] = arr
        for n in model.graph.node:
            if n.op_type != "Constant":
                self._nodes.append(n)
                continue
            name = n.output[0]
            arr = numpy_helper.to_array(n.attribute[0].t)
            if _is_weight(name, arr):
                train = name not in stats and (trainable is None or trainable(name))
                v = tf.Variable(arr, trainable=train, name=name.replace(".", "_"))
                self._vars[name] = v
                self._consts[name] = v
            else:
                self._consts[name] = arr
        self.input_name = model.graph.input[0].name

    @property
    def trainable_by_name(self) -> dict[str, tf.Variable]:
        return {k: v for k, v in self._vars.items() if v.trainable}

    def weights(self) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in self._vars.items()}

    def assign(self, values: dict[str, np.ndarray]) -> None:
        for k, arr in values.items():
            self._vars[k].assign(arr)

    def __call__(self, x: tf.Tensor, outputs: Iterable[str]) -> list[tf.Tensor]:
        """``x``: (N, 3, H, W) float32. Returns the named tensors."""
        env: dict[str, object] = dict(self._consts)
        env[self.input_name] = x
        for n in self._nodes:
            ins = [env[i] if i else None for i in n.input]
            attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
            result = _OPS[n.op_type](ins, attrs)
            env[n.output[0]] = result
        return [env[o] for o in outputs]


def _t(x: object) -> tf.Tensor:
    return x if isinstance(x, (tf.Tensor, tf.Variable)) else tf.constant(x)


def _np(x: object) -> np.ndarray:
    """A value needed as a Python constant (axes, shapes from constants)."""
    if isinstance(x, np.ndarray):
        return x
    return np.asarray(x.numpy())  # type: ignore[attr-defined]


def _conv(ins: list, a: dict) -> tf.Tensor:
    x, w = _t(ins[0]), ins[1]
    b = ins[2] if len(ins) > 2 else None
    sh, sw = a.get("strides", [1, 1])
    dh, dw = a.get("dilations", [1, 1])
    pt, pl, pb, pr = a.get("pads", [0, 0, 0, 0])
    group = a.get("group", 1)
    xh = tf.transpose(x, (0, 2, 3, 1))
    if pt or pl or pb or pr:
        xh = tf.pad(xh, [[0, 0], [pt, pb], [pl, pr], [0, 0]])
    wt = _t(w)
    if group == 1:
        k = tf.transpose(wt, (2, 3, 1, 0))
        y = tf.nn.conv2d(xh, k, [1, sh, sw, 1], "VALID", dilations=[dh, dw])
    else:
        out_ch, per_group = int(wt.shape[0]), int(wt.shape[1])
        if per_group != 1 or out_ch != group:
            # PP-OCRv4's graph has only depthwise grouped convolutions; refuse anything else
            # rather than compute it wrongly.
            raise ValueError(f"unsupported grouped Conv: {per_group} inputs per group")
        k = tf.transpose(wt, (2, 3, 0, 1))  # (kh, kw, C, 1)
        # TensorFlow's depthwise kernel wants equal strides: stride 1, then subsample.
        y = tf.nn.depthwise_conv2d(xh, k, [1, 1, 1, 1], "VALID", dilations=[dh, dw])
        if sh != 1 or sw != 1:
            y = y[:, ::sh, ::sw, :]
    y = tf.transpose(y, (0, 3, 1, 2))
    if b is not None:
        y = y + tf.reshape(_t(b), (1, -1, 1, 1))
    return y


def _conv_transpose(ins: list, a: dict) -> tf.Tensor:
    x, w = _t(ins[0]), _t(ins[1])
    b = ins[2] if len(ins) > 2 else None
    if a.get("group", 1) != 1 or any(a.get("pads", [0])) or a.get("output_padding"):
        raise ValueError("unsupported ConvTranspose: groups, pads or output_padding")
    sh, sw = a.get("strides", [1, 1])
    kh, kw = a["kernel_shape"]
    xh = tf.transpose(x, (0, 2, 3, 1))
    n, h, wd = tf.shape(xh)[0], tf.shape(xh)[1], tf.shape(xh)[2]
    out_ch = int(w.shape[1])
    k = tf.transpose(w, (2, 3, 1, 0))  # ONNX (C_in, C_out, kh, kw) -> TF (kh, kw, C_out, C_in)
    shape = tf.stack([n, (h - 1) * sh + kh, (wd - 1) * sw + kw, out_ch])
    y = tf.nn.conv2d_transpose(xh, k, shape, [1, sh, sw, 1], "VALID")
    y = tf.transpose(y, (0, 3, 1, 2))
    if b is not None:
        y = y + tf.reshape(_t(b), (1, -1, 1, 1))
    return y


def _resize(ins: list, a: dict) -> tf.Tensor:
    # PP-OCRv4's detector neck only upsamples by whole factors, nearest neighbour.
    if a.get("mode", b"nearest") != b"nearest":
        raise ValueError("unsupported Resize: only nearest")
    scales = _np(ins[2]) if len(ins) > 2 and ins[2] is not None else None
    if scales is None or scales.size != 4 or scales[0] != 1 or scales[1] != 1:
        raise ValueError("unsupported Resize: needs NCHW scales")
    fh, fw = int(scales[2]), int(scales[3])
    if fh != scales[2] or fw != scales[3]:
        raise ValueError("unsupported Resize: fractional scale")
    x = _t(ins[0])
    return tf.repeat(tf.repeat(x, fh, axis=2), fw, axis=3)


def _bn(ins: list, a: dict) -> tf.Tensor:
    x, scale, bias, mean, var = (_t(i) for i in ins)

    def c(v: tf.Tensor) -> tf.Tensor:
        return tf.reshape(v, (1, -1, 1, 1))

    eps = a.get("epsilon", 1e-5)
    return (x - c(mean)) * tf.math.rsqrt(c(var) + eps) * c(scale) + c(bias)


def _slice(ins: list, a: dict) -> tf.Tensor:
    data = _t(ins[0])
    starts, ends = _np(ins[1]), _np(ins[2])
    rank = len(data.shape)
    axes = _np(ins[3]) if len(ins) > 3 and ins[3] is not None else np.arange(len(starts))
    steps = _np(ins[4]) if len(ins) > 4 and ins[4] is not None else np.ones(len(starts), int)
    sl = [slice(None)] * rank
    big = np.iinfo(np.int32).max
    for s, e, ax, st in zip(starts, ends, axes, steps, strict=True):
        e = None if e >= big else int(e)
        sl[int(ax) % rank] = slice(int(s), e, int(st))
    return data[tuple(sl)]


def _reshape(ins: list, a: dict) -> tf.Tensor:
    x = _t(ins[0])
    shape = ins[1]
    if isinstance(shape, np.ndarray):
        dims = [int(x.shape[i]) if d == 0 else int(d) for i, d in enumerate(shape)]
        return tf.reshape(x, dims)
    shape = tf.cast(shape, tf.int64)
    n = int(shape.shape[0])
    dims = tf.shape(x, out_type=tf.int64)
    if n > len(x.shape):
        dims = tf.concat([dims, tf.ones([n - len(x.shape)], tf.int64)], 0)
    return tf.reshape(x, tf.where(shape == 0, dims[:n], shape))  # ONNX: 0 copies that dim


def _concat(ins: list, a: dict) -> tf.Tensor:
    ts = [_t(i) for i in ins]
    dtype = next((t.dtype for t in ts if t.dtype != tf.float32), ts[0].dtype)
    return tf.concat([tf.cast(t, dtype) for t in ts], axis=a["axis"])


def _matmul(ins: list, a: dict) -> tf.Tensor:
    x, w = _t(ins[0]), _t(ins[1])
    if len(w.shape) == 2 and len(x.shape) > 2:
        return tf.tensordot(x, w, [[len(x.shape) - 1], [0]])
    return tf.matmul(x, w)


def _avgpool(ins: list, a: dict) -> tf.Tensor:
    if any(a.get("pads", [0])) or a.get("ceil_mode", 0):
        raise ValueError("unsupported AveragePool: padding or ceil_mode (not in this graph)")
    xh = tf.transpose(_t(ins[0]), (0, 2, 3, 1))
    y = tf.nn.avg_pool2d(xh, a["kernel_shape"], a["strides"], "VALID")
    return tf.transpose(y, (0, 3, 1, 2))


def _binary(f: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]) -> Callable[[list, dict], tf.Tensor]:
    def op(ins: list, a: dict) -> tf.Tensor:
        x, y = _t(ins[0]), _t(ins[1])
        if x.dtype != y.dtype:
            y = tf.cast(y, x.dtype)
        return f(x, y)

    return op


_OPS: dict[str, Callable[[list, dict], object]] = {
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "Resize": _resize,
    "BatchNormalization": _bn,
    "Add": _binary(tf.add),
    "Sub": _binary(tf.subtract),
    "Mul": _binary(tf.multiply),
    "Div": _binary(tf.divide),
    "Pow": _binary(tf.pow),
    "Sqrt": lambda i, a: tf.sqrt(_t(i[0])),
    "Relu": lambda i, a: tf.nn.relu(_t(i[0])),
    "Sigmoid": lambda i, a: tf.sigmoid(_t(i[0])),
    "HardSigmoid": lambda i, a: tf.clip_by_value(
        a.get("alpha", 0.2) * _t(i[0]) + a.get("beta", 0.5), 0.0, 1.0
    ),
    "Clip": lambda i, a: tf.clip_by_value(_t(i[0]), float(_np(i[1])), float(_np(i[2]))),
    "GlobalAveragePool": lambda i, a: tf.reduce_mean(_t(i[0]), axis=(2, 3), keepdims=True),
    "AveragePool": _avgpool,
    "Shape": lambda i, a: tf.shape(_t(i[0]), out_type=tf.int64),
    "Cast": lambda i, a: tf.cast(_t(i[0]), _ONNX_TO_TF[a["to"]]),
    "Slice": _slice,
    "Concat": _concat,
    "Reshape": _reshape,
    "Transpose": lambda i, a: tf.transpose(_t(i[0]), a["perm"]),
    "ReduceMean": lambda i, a: tf.reduce_mean(
        _t(i[0]), axis=a["axes"], keepdims=bool(a.get("keepdims", 1))
    ),
    "Squeeze": lambda i, a: tf.squeeze(_t(i[0]), axis=a["axes"]),
    "MatMul": _matmul,
    "Softmax": lambda i, a: tf.nn.softmax(_t(i[0]), axis=a.get("axis", -1)),
}
