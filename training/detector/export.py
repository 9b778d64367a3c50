"""Convert trained detector weights to full-int8 TFLite (and a float32 twin for comparison).

    .venv-train/bin/python -m training.detector.export --weights WEIGHTS [--corners-trained]

Writes ``inference/models/detector.tflite`` + ``detector.json`` (int8, committed) and
``training/work/detector/float/detector.tflite`` + ``.json`` (float32, only for the int8-vs-float
comparison). Metrics are filled in afterwards by :mod:`training.detector.eval`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from training.detector.data import read_grey, splits, training_sources  # noqa: E402
from training.detector.model import build  # noqa: E402
from training.detector.sampler import CROP  # noqa: E402
from training.detector.spec import CLASSES, INPUT_HW, STRIDE  # noqa: E402
from training.manifest_tools import write_manifest  # noqa: E402

MODELS = Path("inference/models")
WORK = Path("training/work/detector")
NORMALISATION = (
    "grey (ITU-R 601 from RGB), letterboxed top-left into 640x384 with area resampling, "
    "padding 0, x/255"
)
TRAINER = ".venv-train/bin/python -m training.detector.train && -m training.detector.export"


def letterboxed(img: np.ndarray) -> np.ndarray:
    import cv2

    h, w = img.shape
    s = min(INPUT_HW[1] / w, INPUT_HW[0] / h)
    nw, nh = round(w * s), round(h * s)
    out = np.zeros(INPUT_HW, np.uint8)
    out[:nh, :nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    return out


def representative(n: int = 160, seed: int = 0) -> Iterator[list[np.ndarray]]:
    """Training frames only (never the held-out split), with day/night brightness spread."""
    train, _ = splits()
    rng = np.random.default_rng(seed)
    for i in rng.permutation(len(train))[:n]:
        img, _ = read_grey(train[int(i)].path)
        x = letterboxed(img).astype(np.float32) / 255.0
        if rng.random() < 0.3:
            x = np.clip(x ** rng.uniform(1.5, 2.5) * rng.uniform(1.0, 1.5), 0, 1)
        yield [x[None, :, :, None]]


def labels(corners_trained: bool) -> dict[str, object]:
    return {
        "classes": list(CLASSES),
        "stride": STRIDE,
        "corners_trained": corners_trained,
        "outputs": {
            "heatmap": "sigmoid centre likelihood per class",
            "offset": "centre position in its cell: cx/stride - col, cy/stride - row",
            "size": "log(w/stride), log(h/stride) in input pixels",
            "corners": "plate corners clockwise from top-left, ((x-cx)/w, (y-cy)/h)",
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=WORK / "ckpt.weights.h5")
    p.add_argument("--corners-trained", action="store_true")
    p.add_argument("--out", type=Path, default=MODELS)
    args = p.parse_args(argv)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    trained = build((CROP, CROP))
    trained.load_weights(str(args.weights))
    model = build(INPUT_HW, batch_size=1)
    model.set_weights(trained.get_weights())
    train, _ = splits()
    common = {
        "labels": labels(args.corners_trained),
        "training_data": training_sources(train),
        "licence": "AGPL-3.0-or-later",
        "metrics": {},
        "float_metrics": {},
        "created": dt.date.today().isoformat(),
        "trainer": TRAINER,
    }
    state = args.weights.parent / "state.json"
    rendered = json.loads(state.read_text()).get("synth_rendered", 0) if state.exists() else 0
    if args.corners_trained:
        name = "synthetic plates (training/synth) pasted into crops of the scenes above"
        if not rendered:
            name += "; number of distinct renders not recorded"
        common["training_data"] = [
            *common["training_data"],
            {"set": name, "licence": "AGPL-3.0-or-later", "count": int(rendered)},
        ]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    args.out.mkdir(parents=True, exist_ok=True)
    int8_path = args.out / "detector.tflite"
    int8_path.write_bytes(conv.convert())
    write_manifest(int8_path, "detector", normalisation=NORMALISATION, **common)  # type: ignore[arg-type]

    fconv = tf.lite.TFLiteConverter.from_keras_model(model)
    float_dir = WORK / "float"
    float_dir.mkdir(parents=True, exist_ok=True)
    float_path = float_dir / "detector.tflite"
    float_path.write_bytes(fconv.convert())
    write_manifest(float_path, "detector", normalisation=NORMALISATION, **common)  # type: ignore[arg-type]
    print(json.dumps({"int8_bytes": int8_path.stat().st_size,
                      "float_bytes": float_path.stat().st_size}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
