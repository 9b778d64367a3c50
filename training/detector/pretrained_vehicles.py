"""Measure a pretrained vehicle detector against the committed detector's vehicle head.

The committed detector's vehicle class is weak (AP50 0.18-0.23 on the held-out Open Images
frames): it learnt vehicles from 311 scenes, the Romanian set has none. A detector pretrained on
far more cars ships inside a registry package: MediaPipe's SSD MobileNetV2 trained on Open Images
V4 (24 classes, among them ``Vehicle`` and ``Car``), the object detector of the Objectron
solution, packed into the npm package ``@mediapipe/objectron`` (Apache-2.0; the same file, by
sha256, that MediaPipe's own build fetches). The ``mediapipe`` PyPI wheels do not carry it (their
Objectron downloads it at run time).

    cd build && npm pack @mediapipe/objectron@0.4.1675468480 && cd ..
    PYTHONPATH=. .venv/bin/python -m training.detector.pretrained_vehicles \\
        --tarball build/mediapipe-objectron-0.4.1675468480.tgz

Extracts the model into ``training/work/vehicles/`` and prints, on the detector's held-out Open
Images frames (``training.detector.data.splits``, the frames with vehicle labels), AP50 at IoU
0.5, recall / precision at a few thresholds and the median time of one pass on one thread.
Nothing here runs in the daemon: the file is 9.5 MB of float16 weights (float32 in memory).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import statistics
import tarfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inference.geometry import nms
from inference.manifest import TensorSpec
from inference.runtime import dequantize, quantize

MODEL_NAME = "object_detection_ssd_mobilenetv2_oidv4_fp16.tflite"
MODEL_SHA256 = "d0a5255bf8c4f5a0bc4240741a76c41d5e939f7655078f945f50ab53a9375da6"
LABELS_NAME = "object_detection_oidv4_labelmap.txt"
VEHICLE_LABELS = ("Vehicle", "Car")
INPUT = 300
# TF Object Detection API SSD defaults (the anchor count, 1917, pins them down).
GRIDS = (19, 10, 5, 3, 2, 1)
MIN_SCALE, MAX_SCALE = 0.2, 0.95
BOX_SCALE = (10.0, 10.0, 5.0, 5.0)  # y, x, h, w
NMS_IOU = 0.5
WORK = Path("training/work/vehicles")


def extract(tarball: Path, out: Path) -> tuple[Path, list[str]]:
    """Write the detector and its label map from the npm tarball's packed assets into ``out``.

    The assets file is a concatenation; its loader script names each file's byte range."""
    with tarfile.open(tarball) as tar:
        loader = _member(tar, "package/objectron_solution_packed_assets_loader.js").decode()
        data = _member(tar, "package/objectron_solution_packed_assets.data")
    ranges = {
        Path(name).name: (int(start), int(end))
        for name, start, end in re.findall(
            r'"filename": "([^"]+)", "start": (\d+), "end": (\d+)', loader
        )
    }
    if MODEL_NAME not in ranges or LABELS_NAME not in ranges:
        raise ValueError(f"{tarball}: packed assets lack {MODEL_NAME} or {LABELS_NAME}")
    model = data[slice(*ranges[MODEL_NAME])]
    if hashlib.sha256(model).hexdigest() != MODEL_SHA256:
        raise ValueError(f"{tarball}: {MODEL_NAME} is not the expected file (sha256 differs)")
    labels = data[slice(*ranges[LABELS_NAME])].decode().splitlines()
    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL_NAME).write_bytes(model)
    return out / MODEL_NAME, labels


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    fh = tar.extractfile(name)
    if fh is None:
        raise ValueError(f"{name} is not a file in the tarball")
    return fh.read()


def anchors() -> np.ndarray:
    """(1917, 4) anchors as (yc, xc, h, w), fractions of the input."""
    n = len(GRIDS)

    def scale(i: int) -> float:
        return MIN_SCALE + (MAX_SCALE - MIN_SCALE) * i / (n - 1)

    out = []
    for layer, g in enumerate(GRIDS):
        if layer == 0:
            specs = [(0.1, 1.0), (scale(0), 2.0), (scale(0), 0.5)]
        else:
            s = scale(layer)
            s_next = scale(layer + 1) if layer + 1 < n else 1.0
            specs = [(s, a) for a in (1.0, 2.0, 0.5, 3.0, 1 / 3)] + [
                (float(np.sqrt(s * s_next)), 1.0)
            ]
        for y in range(g):
            for x in range(g):
                for s, a in specs:
                    out.append(((y + 0.5) / g, (x + 0.5) / g, s / np.sqrt(a), s * np.sqrt(a)))
    return np.asarray(out, np.float64)


def decode(
    encodings: np.ndarray,
    logits: np.ndarray,
    classes: list[int],
    frame_wh: tuple[int, int],
    anchor: np.ndarray,
    threshold: float = 0.05,
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (x, y, w, h in frame pixels) and scores of ``classes`` (the best of them per
    anchor), after non-maximum suppression."""
    score = 1.0 / (1.0 + np.exp(-logits[:, classes].max(axis=1)))
    yc = encodings[:, 0] / BOX_SCALE[0] * anchor[:, 2] + anchor[:, 0]
    xc = encodings[:, 1] / BOX_SCALE[1] * anchor[:, 3] + anchor[:, 1]
    h = np.exp(encodings[:, 2] / BOX_SCALE[2]) * anchor[:, 2]
    w = np.exp(encodings[:, 3] / BOX_SCALE[3]) * anchor[:, 3]
    fw, fh = frame_wh
    keep = np.nonzero(score >= threshold)[0]
    boxes = np.stack([(xc - w / 2) * fw, (yc - h / 2) * fh, w * fw, h * fh], axis=1)[keep]
    idx = nms(boxes, score[keep], NMS_IOU)
    return boxes[idx], score[keep][idx]


def _spec(detail: dict[str, Any]) -> TensorSpec:
    """An interpreter's tensor detail as the runtime's spec (for its (de)quantisation)."""
    scale, zero = detail["quantization"]
    return TensorSpec(detail["name"], tuple(detail["shape"]), np.dtype(detail["dtype"]).name,
                      (float(scale), int(zero)))


def _quantized(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """``x`` as the input tensor wants it (int8 for a fully quantised build)."""
    spec = _spec(detail)
    return quantize(x, spec) if spec.quantized else x


def _real(y: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    spec = _spec(detail)
    return dequantize(y, spec) if spec.quantized else y


def main() -> None:
    from ai_edge_litert.interpreter import Interpreter

    from training.detector.data import splits
    from training.detector.eval import _ap, _frame, _match

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tarball", type=Path, required=True, help="npm pack of @mediapipe/objectron")
    p.add_argument("--out", type=Path, default=WORK)
    p.add_argument("--model", type=Path, default=None,
                   help="measure this build of the detector instead (e.g. an int8 one)")
    a = p.parse_args()
    model, labels = extract(a.tarball, a.out)
    if a.model is not None:
        model = a.model
    classes = [labels.index(n) for n in VEHICLE_LABELS]
    it = Interpreter(str(model), num_threads=1)
    it.allocate_tensors()
    inp, (enc_out, cls_out) = it.get_input_details()[0], it.get_output_details()
    anchor = anchors()
    scores: list[float] = []
    hits: list[bool] = []
    n_gt, times = 0, []
    frames = [s for s in splits()[1] if s.has_vehicle_labels]
    for scene in frames:
        rgb = _frame(scene)
        x = cv2.resize(rgb, (INPUT, INPUT), interpolation=cv2.INTER_AREA)
        t0 = time.perf_counter()
        it.set_tensor(inp["index"], _quantized(x.astype(np.float32) / 127.5 - 1.0, inp)[None])
        it.invoke()
        times.append((time.perf_counter() - t0) * 1000)
        boxes, sc = decode(
            _real(it.get_tensor(enc_out["index"])[0], enc_out),
            _real(it.get_tensor(cls_out["index"])[0], cls_out),
            classes,
            (rgb.shape[1], rgb.shape[0]),
            anchor,
        )
        tp, _ = _match(boxes, sc, scene.vehicles)
        scores += sc.tolist()
        hits += tp.tolist()
        n_gt += len(scene.vehicles)
    s_arr, h_arr = np.asarray(scores), np.asarray(hits, bool)
    result = {
        "model": model.name,
        "classes": list(VEHICLE_LABELS),
        "frames": len(frames),
        "vehicles": n_gt,
        "vehicle_ap50": round(_ap(scores, hits, n_gt), 4),
        "ms_median_one_thread": round(statistics.median(times), 1),
        "operating_points": [
            {
                "threshold": t,
                "recall": round(float(h_arr[s_arr >= t].sum()) / max(1, n_gt), 3),
                "precision": round(
                    float(h_arr[s_arr >= t].mean()) if (s_arr >= t).any() else 0.0, 3
                ),
            }
            for t in (0.2, 0.3, 0.4, 0.5)
        ],
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
