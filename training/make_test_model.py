"""Build the tiny full-int8 model the runtime tests load (``tests/data/runtime/tiny.tflite``).

Two inputs-free of meaning: one image-like input and two outputs of different shapes, so the
tests exercise quantisation and output lookup by name. Run with the training venv:
``.venv-train/bin/python -m training.make_test_model``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from training.manifest_tools import write_manifest

OUT = Path("tests/data/runtime")


def main() -> None:
    keras = tf.keras
    inp = keras.Input((8, 16, 1), batch_size=1, name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    a = keras.layers.Dense(3, activation="softmax", name="class")(x)
    b = keras.layers.Dense(5, name="score")(x)
    model = keras.Model(inp, {"class": a, "score": b})
    rng = np.random.default_rng(0)

    def rep():  # type: ignore[no-untyped-def]
        for _ in range(32):
            yield [rng.random((1, 8, 16, 1), dtype=np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "tiny.tflite"
    path.write_bytes(conv.convert())
    write_manifest(
        path,
        "tiny",
        normalisation="grayscale, x/255",
        labels={"class": ["a", "b", "c"]},
        training_data=[],
        licence="AGPL-3.0-or-later",
        metrics={},
        float_metrics={},
        created="2026-11-23",
        trainer=".venv-train/bin/python -m training.make_test_model",
    )


if __name__ == "__main__":
    main()
