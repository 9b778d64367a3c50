"""The detector network: a small fully-convolutional CenterNet at stride 4.

Input: one grey frame letterboxed to ``INPUT_HW`` (top-left aligned), pixels ``x/255``.
Outputs, all on the stride-4 grid (``GRID_HW``):

* ``heatmap`` (2 ch, sigmoid): object-centre likelihood per class (0 plate, 1 vehicle).
* ``offset`` (2 ch): sub-cell position of the centre, ``cx/4 - col`` and ``cy/4 - row``.
* ``size`` (2 ch): ``log(w/4)``, ``log(h/4)`` of the box in input pixels.
* ``corners`` (8 ch): plate corners clockwise from top-left, each ``((x - cx)/w, (y - cy)/h)``
  relative to the plate's axis-aligned box, so the values stay near ±0.5 and quantise well.

The backbone is depthwise-separable (MobileNet-like, ReLU6 so int8 ranges stay tight) down to
stride 32 for the vehicle-sized receptive field, with a light top-down path back to stride 4
where distant plates are only a few cells tall. Grey input: one model for day colour and night
IR frames.
"""

from __future__ import annotations

import keras
from keras import layers

from training.detector.spec import CLASSES, INPUT_HW


def _act(x: keras.KerasTensor) -> keras.KerasTensor:
    return layers.ReLU(max_value=6.0)(x)


def _conv_bn(x: keras.KerasTensor, ch: int, k: int = 1, stride: int = 1) -> keras.KerasTensor:
    x = layers.Conv2D(ch, k, strides=stride, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return _act(x)


def _sep(x: keras.KerasTensor, ch: int, stride: int = 1, dilation: int = 1) -> keras.KerasTensor:
    """Depthwise 3x3 + pointwise, with a residual when shapes allow."""
    inp = x
    x = layers.DepthwiseConv2D(
        3, strides=stride, padding="same", dilation_rate=dilation, use_bias=False
    )(x)
    x = layers.BatchNormalization()(x)
    x = _act(x)
    x = layers.Conv2D(ch, 1, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    if stride == 1 and inp.shape[-1] == ch:
        return layers.Add()([inp, x])
    return _act(x)


def build(input_hw: tuple[int, int] = INPUT_HW, batch_size: int | None = None) -> keras.Model:
    """Build the detector. ``input_hw`` may differ from ``INPUT_HW`` (training on crops)."""
    inp = keras.Input((input_hw[0], input_hw[1], 1), batch_size=batch_size, name="image")
    x = _conv_bn(inp, 16, 3, 2)  # /2
    x = _sep(x, 16)
    c2 = _sep(x, 32, 2)  # /4
    c2 = _sep(c2, 32)
    c3 = _sep(c2, 48, 2)  # /8
    c3 = _sep(c3, 48)
    c4 = _sep(c3, 80, 2)  # /16
    c4 = _sep(c4, 80)
    c4 = _sep(c4, 80, dilation=2)
    c5 = _sep(c4, 112, 2)  # /32
    c5 = _sep(c5, 112)

    p = _conv_bn(c5, 64)
    p = layers.UpSampling2D(2)(p)
    p = layers.Add()([p, _conv_bn(c4, 64)])
    p = _sep(p, 48)
    p = layers.UpSampling2D(2)(p)
    p = layers.Add()([p, _conv_bn(c3, 48)])
    p = _sep(p, 32)
    p = layers.UpSampling2D(2)(p)
    p = layers.Add()([p, _conv_bn(c2, 32)])
    p = _sep(p, 32)
    p = _sep(p, 32)

    def head(ch: int, name: str, activation: str | None = None) -> keras.KerasTensor:
        h = _sep(p, 32)
        return layers.Conv2D(ch, 1, activation=activation, name=name)(h)

    hm_pre = _sep(p, 32)
    heat = layers.Conv2D(
        len(CLASSES),
        1,
        activation="sigmoid",
        name="heatmap",
        # CenterNet's prior: start near p=0.01 so the focal loss does not blow up at step 0.
        bias_initializer=keras.initializers.Constant(-4.6),
    )(hm_pre)
    offset = head(2, "offset")
    size = head(2, "size")
    corners = head(8, "corners")
    return keras.Model(
        inp, {"heatmap": heat, "offset": offset, "size": size, "corners": corners}, name="detector"
    )
