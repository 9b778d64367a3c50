"""The OCR network: conv-only trunk, fixed-slot character head, region and plate-class heads.

Conv-only because LSTMs convert to TFLite only unrolled at batch 1 and quantise poorly; a
fixed-slot dense head reads two-row plates (the whole plate is in view) and gives a probability
per character. ~0.5 M parameters, ~0.6 MB as int8.
"""

from __future__ import annotations

import keras
from keras import layers

from training.ocr.common import ALPHABET, HEIGHT, PLATE_CLASSES, REGIONS, SLOTS, WIDTH


def _conv(x, filters: int):  # type: ignore[no-untyped-def]
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def build_model() -> keras.Model:
    inp = keras.Input((HEIGHT, WIDTH, 1), name="image")
    # A strided first layer: full-resolution convolutions cost most of the CPU training time
    # and add little for characters that are >= 20 px tall at this input size.
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(inp)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)  # 32 x 80
    x = _conv(x, 32)
    x = layers.MaxPooling2D()(x)  # 16 x 40
    x = _conv(x, 48)
    x = layers.MaxPooling2D()(x)  # 8 x 20
    x = _conv(x, 64)
    x = _conv(x, 64)
    x = layers.MaxPooling2D()(x)  # 4 x 10
    x = _conv(x, 96)
    feat = x
    c = layers.Conv2D(32, 1, activation="relu")(feat)
    c = layers.Flatten()(c)
    c = layers.Dropout(0.25)(c)
    c = layers.Dense(256, activation="relu")(c)
    c = layers.Dense(SLOTS * len(ALPHABET))(c)
    c = layers.Reshape((SLOTS, len(ALPHABET)))(c)
    chars = layers.Softmax(axis=-1, name="chars")(c)
    g = layers.GlobalAveragePooling2D()(feat)
    g2 = layers.GlobalMaxPooling2D()(feat)
    g = layers.Concatenate()([g, g2])
    region = layers.Dense(len(REGIONS), activation="softmax", name="region")(g)
    plate_class = layers.Dense(len(PLATE_CLASSES), activation="softmax", name="plate_class")(g)
    return keras.Model(inp, {"chars": chars, "region": region, "plate_class": plate_class})
