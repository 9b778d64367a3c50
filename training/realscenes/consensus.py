"""Label proposals for every plate box of the real scenes: two independent recognizers.

Runs in the runtime venv plus ``rapidocr-onnxruntime`` (PP-OCRv4 recognizer, Apache-2.0) and
Debian's ``tesseract-ocr`` 5.x. For every labelled plate box it cuts the box with an 8 % / 15 %
margin, reads it with both, and writes ``candidates.jsonl`` (one line per plate: scene key, box
index, box, both readings, whether they agree) and the crops (PNG) for the contact sheets.
Neither reading is a label: every plate is checked by eye afterwards (``sheets.py``).

    PYTHONPATH=. .venv/bin/python -m training.realscenes.consensus --out training/work/realscenes
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np

from training.detector.data import load_openimages, load_romanian

MARGIN = (0.08, 0.15)
_ALNUM = re.compile(r"[^A-Z0-9]")


def crop_plate(
    img: np.ndarray, box: np.ndarray, margin: tuple[float, float] = MARGIN
) -> np.ndarray:
    x, y, w, h = (float(v) for v in box)
    mx, my = w * margin[0], h * margin[1]
    x0, y0 = max(0, int(round(x - mx))), max(0, int(round(y - my)))
    x1 = min(img.shape[1], int(round(x + w + mx)))
    y1 = min(img.shape[0], int(round(y + h + my)))
    return img[y0:y1, x0:x1]


def normalise(text: str) -> str:
    return _ALNUM.sub("", text.upper())


class PaddleRec:
    """PP-OCRv4 recognizer straight from the wheel's ONNX file, greedy CTC, one text line."""

    def __init__(self) -> None:
        import onnxruntime as ort
        import rapidocr_onnxruntime

        root = Path(rapidocr_onnxruntime.__file__).parent
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.sess = ort.InferenceSession(
            str(root / "models" / "ch_PP-OCRv4_rec_infer.onnx"),
            opts,
            providers=["CPUExecutionProvider"],
        )
        meta = self.sess.get_modelmeta().custom_metadata_map
        self.chars = ["<blank>", *meta["character"].splitlines(), " "]

    def __call__(self, bgr: np.ndarray) -> tuple[str, float]:
        h, w = bgr.shape[:2]
        width = max(16, min(320, int(np.ceil(48 * w / max(h, 1)))))
        x = cv2.resize(bgr, (width, 48)).astype(np.float32) / 255.0
        x = (x - 0.5) / 0.5
        pad = np.zeros((48, 320, 3), np.float32)
        pad[:, :width] = x
        probs = self.sess.run(None, {"x": pad.transpose(2, 0, 1)[None]})[0][0]
        idx = probs.argmax(1)
        text, confs, prev = [], [], 0
        for t, i in enumerate(idx):
            if i != 0 and i != prev:
                text.append(self.chars[i])
                confs.append(float(probs[t, i]))
            prev = i
        return "".join(text), float(np.prod(confs)) if confs else 0.0


def tesseract(bgr: np.ndarray) -> str:
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    scale = max(1.0, 64.0 / grey.shape[0])
    grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    with tempfile.NamedTemporaryFile(suffix=".png") as f:
        cv2.imwrite(f.name, grey)
        out = subprocess.run(
            [
                "tesseract",
                f.name,
                "-",
                "--psm",
                "7",
                "-c",
                "tessedit_char_whitelist=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    return out.stdout.strip()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    crops = a.out / "crops"
    crops.mkdir(parents=True, exist_ok=True)
    rec = PaddleRec()
    n = 0
    with (a.out / "candidates.jsonl").open("w") as out:
        for scene in load_romanian() + load_openimages():
            img = cv2.imread(str(scene.path), cv2.IMREAD_COLOR)
            for i, box in enumerate(scene.plates):
                crop = crop_plate(img, box)
                if crop.shape[0] < 4 or crop.shape[1] < 4:
                    continue
                paddle, conf = rec(crop)
                tess = tesseract(crop)
                pid = f"{n:04d}"
                cv2.imwrite(str(crops / f"{pid}.png"), crop)
                pn, tn = normalise(paddle), normalise(tess)
                out.write(
                    json.dumps(
                        {
                            "id": pid,
                            "scene": scene.key,
                            "box_index": i,
                            "box": [round(float(v), 1) for v in box],
                            "paddle": pn,
                            "paddle_raw": paddle,
                            "paddle_conf": round(conf, 4),
                            "tesseract": tn,
                            "agree": bool(pn) and pn == tn,
                        }
                    )
                    + "\n"
                )
                n += 1
    print(f"{n} plates")


if __name__ == "__main__":
    main()
