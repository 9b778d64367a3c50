"""Texts for the European crops, which come without any: two recognizers must agree.

``openalpr-traindetector-eu-crops`` (AGPL-3.0) has 1,695 real European plates and no text, so
until now the reader learnt only their region from them. Each crop is read by the committed
reader (``inference/models/ocr.tflite``) and by PP-OCRv4's recognizer as it ships in the
``rapidocr-onnxruntime`` wheel (never fine-tuned here, so its mistakes are its own); a text is
kept only where both read the same registration, the committed reader is sure of it and it has a
registration's shape. What neither reads alike stays a region-only sample.

The result is a label file for ``finetune.py --eu-texts``. Kept texts are easy plates for the
committed reader by construction: they widen the lettering it sees (German, French, Dutch,
Belgian, Serbian styles) more than they teach it hard cases.

    PYTHONPATH=. .venv-train/bin/python -m training.recognizer.pseudo_eu
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import cv2
import numpy as np

from training.realscenes.consensus import PaddleRec, normalise
from training.recognizer.features import WORK
from training.recognizer.splits import DATASETS

EU = "openalpr-traindetector-eu-crops"
OUT = WORK / "eu_texts.jsonl"
MIN_CONFIDENCE = 0.9
# A registration: 4-10 characters with at least one letter and one digit. The pretrained reader
# also reads the country band's letters (D, NL, B) into the text; such reads disagree with the
# committed one and drop out here.
_PLATE = re.compile(r"^(?=.*[0-9])(?=.*[A-Z])[A-Z0-9]{4,10}$")


def main() -> None:
    from inference.engine import DEFAULT_MODEL_DIR
    from inference.ocr import PlateReader

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATASETS)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument(
        "--model-dir", type=Path, default=DEFAULT_MODEL_DIR,
        help="the reader to agree with (default: the committed one)",
    )
    a = p.parse_args()
    reader = PlateReader.load(a.model_dir, threads=1)
    paddle = PaddleRec()
    rows = [json.loads(line) for line in (a.data / EU / "labels.jsonl").read_text().splitlines()]
    kept = 0
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with a.out.open("w") as out:
        for r in rows:
            bgr = cv2.imread(str(a.data / EU / r["image"]), cv2.IMREAD_COLOR)
            if bgr is None:
                continue
            ours = reader.read(np.ascontiguousarray(bgr[:, :, ::-1]))
            theirs, _ = paddle(bgr)
            text = ours.text
            if (
                ours.confidence >= MIN_CONFIDENCE
                and _PLATE.match(text)
                and normalise(theirs) == text
            ):
                out.write(json.dumps({"image": r["image"], "text": text}) + "\n")
                kept += 1
    reader.close()
    print(f"{kept} of {len(rows)} European crops read alike -> {a.out}")


if __name__ == "__main__":
    main()
