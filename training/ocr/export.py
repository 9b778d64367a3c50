"""Convert the trained OCR model to full-int8 TFLite and write its manifest.

Run: ``.venv-train/bin/python -m training.ocr.export [--checkpoint training/work/ocr/final.keras]``.
The float model's test metrics go into the manifest's ``float_metrics``; the int8 metrics are
written by :mod:`training.ocr.eval` (runtime venv) into ``metrics``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from training.ocr.common import (
    ALPHABET,
    HEIGHT,
    MODEL_DIR,
    PAD,
    PLATE_CLASSES,
    REGIONS,
    SLOTS,
    WIDTH,
    WORK,
)
from training.manifest_tools import write_manifest

log = logging.getLogger(__name__)

NAME = "ocr"
TRAINER = (
    "training/README.md#ocr: .venv-train/bin/python -m training.ocr.data --synth 30000; "
    "-m training.ocr.train --epochs 5 --threads 1; -m training.ocr.train --stage long "
    "--init training/work/ocr/stage1.keras --epochs 7 --lr 1.5e-3 --threads 1; "
    "-m training.ocr.train --stage long2 --init training/work/ocr/final_long.keras "
    "--epochs 12 --lr 1e-3 --threads 2; "
    "-m training.ocr.export --checkpoint training/work/ocr/final_long2.keras; "
    ".venv/bin/python -m training.ocr.eval"
)


def labels() -> dict[str, object]:
    return {
        "alphabet": ALPHABET,
        "pad": PAD,
        "slots": SLOTS,
        "regions": list(REGIONS),
        "plate_classes": list(PLATE_CLASSES),
        "input_hw": [HEIGHT, WIDTH],
    }


def training_data() -> list[dict[str, object]]:
    counts = json.loads((WORK / "counts.json").read_text())
    return [
        {"set": "us-plate-photos (train split)", "licence": "AGPL-3.0", "count": counts["us"]},
        {
            "set": "openalpr-traindetector-br-crops (with text, train split)",
            "licence": "AGPL-3.0",
            "count": counts["br"],
        },
        {
            "set": "openalpr-traindetector-eu-crops (region only, train split)",
            "licence": "AGPL-3.0",
            "count": counts["eu"],
        },
        {
            "set": "synthetic (training.synth; openalpr-us-state-plate-templates AGPL-3.0, "
            "fonts OFL-1.1/Apache-2.0/Bitstream Vera)",
            "licence": "AGPL-3.0",
            "count": counts["synth"],
        },
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checkpoint", type=Path, default=WORK / "final.keras")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import keras
    import tensorflow as tf

    from training.ocr.evaluate_core import evaluate_sets
    from training.ocr.train import TRAIN_SETS, load_sets

    model = keras.models.load_model(a.checkpoint)
    train = load_sets(TRAIN_SETS)
    rng = np.random.default_rng(0)
    idx = rng.choice(len(train["x"]), 400, replace=False)
    rep_x = train["x"][idx].astype(np.float32)[..., None] / 255.0

    def rep():  # type: ignore[no-untyped-def]
        for i in range(len(rep_x)):
            yield [rep_x[i : i + 1]]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    blob = conv.convert()
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    path = MODEL_DIR / f"{NAME}.tflite"
    path.write_bytes(blob)
    log.info("wrote %s (%d bytes)", path, len(blob))

    def predict(x: np.ndarray) -> dict[str, np.ndarray]:
        out = model.predict(x.astype(np.float32)[..., None] / 255.0, batch_size=256, verbose=0)
        return {k: np.asarray(v) for k, v in out.items()}

    float_metrics = evaluate_sets(predict)
    write_manifest(
        path,
        NAME,
        normalisation="RGB crop -> grayscale (OpenCV RGB2GRAY), stretched to 64x160 "
        "(INTER_AREA when shrinking), x/255; see inference.ocr.preprocess",
        labels=labels(),
        training_data=training_data(),
        licence="AGPL-3.0-or-later",
        metrics={},
        float_metrics=float_metrics,
        created="2026-11-23",
        trainer=TRAINER,
    )
    log.info("float metrics %s", float_metrics)


if __name__ == "__main__":
    main()
