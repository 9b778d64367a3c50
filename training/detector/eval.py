"""Evaluate a detector TFLite model on the held-out real scenes (runs in the runtime venv).

    .venv/bin/python -m training.detector.eval [--model-dir inference/models] [--write-manifest]
                                               [--float-dir training/work/detector/float]

Reports, at the model's default thresholds: plate recall at IoU >= 0.5 per set and for small
plates (< 80 px wide in the original frame), precision, AP50, vehicle recall/precision (openimages
only: the Romanian set has no vehicle labels), false plates per frame on plate-free frames (the
held-out frames with every labelled plate inpainted away), and the detector's median latency.
With ``--write-manifest`` the figures go into the manifests' ``metrics`` (int8) and
``float_metrics`` (the float32 twin's figures, for comparison).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inference.detector import DetectorSettings, PlateDetector
from inference.geometry import iou_matrix
from inference.manifest import ModelManifest
from inference.records import Detection
from training.detector.data import OPENIMAGES, ROMANIAN, Scene, splits

SMALL_PX = 80.0
IOU = 0.5
LOW = 0.05  # decode threshold; every operating point is a filter on these scores
SWEEP = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


def _match(pred: np.ndarray, scores: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Greedy best-score-first matching; ``(tp flag per prediction, matched flag per gt)``."""
    order = np.argsort(-scores)
    tp = np.zeros(len(pred), bool)
    hit = np.zeros(len(gt), bool)
    if len(pred) and len(gt):
        ious = iou_matrix(pred, gt)
        for i in order:
            j = int(np.argmax(np.where(hit, -1.0, ious[i])))
            if not hit[j] and ious[i, j] >= IOU:
                hit[j] = True
                tp[i] = True
    return tp, hit


def _ap(all_scores: list[float], all_tp: list[bool], n_gt: int) -> float:
    if n_gt == 0 or not all_scores:
        return 0.0
    order = np.argsort(-np.asarray(all_scores))
    tp = np.asarray(all_tp)[order].astype(float)
    cum_tp = np.cumsum(tp)
    precision = cum_tp / np.arange(1, len(tp) + 1)
    recall = cum_tp / n_gt
    # Area under the precision envelope (VOC style, all points).
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[1.0], precision, [0.0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def _frame(scene: Scene) -> np.ndarray:
    bgr = cv2.imread(str(scene.path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"cannot read {scene.path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def plate_free(frame: np.ndarray, plates: np.ndarray) -> np.ndarray:
    """The frame with every labelled plate (grown by 15 %) inpainted away."""
    mask = np.zeros(frame.shape[:2], np.uint8)
    for x, y, w, h in plates:
        mx, my = 0.15 * w + 2, 0.15 * h + 2
        cv2.rectangle(
            mask, (int(x - mx), int(y - my)), (int(x + w + mx), int(y + h + my)), 255, -1
        )
    return cv2.inpaint(frame, mask, 5, cv2.INPAINT_TELEA)


@dataclass(frozen=True)
class _FrameDets:
    scene: Scene
    plates: np.ndarray  # (N, 4)
    plate_scores: np.ndarray
    vehicles: np.ndarray
    vehicle_scores: np.ndarray
    free_scores: np.ndarray  # plate scores on the plate-free version of the frame


def _boxes(dets: list[Detection], label: str) -> tuple[np.ndarray, np.ndarray]:
    sel = [d for d in dets if d.label == label]
    b = np.array([[d.box.x, d.box.y, d.box.w, d.box.h] for d in sel]).reshape(-1, 4)
    return b, np.array([d.score for d in sel])


def collect(det: PlateDetector, test: list[Scene]) -> tuple[list[_FrameDets], list[float]]:
    """Decode every held-out frame once at a low threshold; operating points filter scores."""
    frames, times = [], []
    for scene in test:
        frame = _frame(scene)
        t0 = time.perf_counter()
        out, lb = det.raw(frame)
        times.append((time.perf_counter() - t0) * 1000)
        dets = det.decode(out, lb, plate_threshold=LOW, vehicle_threshold=LOW)
        pb, ps = _boxes(dets, "plate")
        vb, vs = _boxes(dets, "vehicle")
        free = np.zeros(0)
        if len(scene.plates):
            fo, flb = det.raw(plate_free(frame, scene.plates))
            _, free = _boxes(det.decode(fo, flb, plate_threshold=LOW, vehicle_threshold=1.0),
                             "plate")
        frames.append(_FrameDets(scene, pb, ps, vb, vs, free))
    return frames, times


def at_threshold(frames: list[_FrameDets], thr: float, vthr: float) -> dict[str, Any]:
    per_set: dict[str, dict[str, int]] = {}
    small_hit = small_n = tp_all = fp_all = 0
    veh_tp = veh_fp = veh_n = 0
    free_fp = free_frames = 0
    n_gt = 0
    for f in frames:
        keep = f.plate_scores >= thr
        tp, hit = _match(f.plates[keep], f.plate_scores[keep], f.scene.plates)
        s = per_set.setdefault(f.scene.source, {"gt": 0, "hit": 0, "tp": 0, "fp": 0})
        s["gt"] += len(f.scene.plates)
        s["hit"] += int(hit.sum())
        s["tp"] += int(tp.sum())
        s["fp"] += int((~tp).sum())
        n_gt += len(f.scene.plates)
        tp_all += int(tp.sum())
        fp_all += int((~tp).sum())
        small = f.scene.plates[:, 2] < SMALL_PX
        small_n += int(small.sum())
        small_hit += int(hit[small].sum())
        if f.scene.has_vehicle_labels:
            vk = f.vehicle_scores >= vthr
            vtp, _ = _match(f.vehicles[vk], f.vehicle_scores[vk], f.scene.vehicles)
            veh_tp += int(vtp.sum())
            veh_fp += int((~vtp).sum())
            veh_n += len(f.scene.vehicles)
        if len(f.scene.plates):
            free_fp += int((f.free_scores >= thr).sum())
            free_frames += 1
    r: dict[str, Any] = {
        "plate_threshold": thr,
        "plate_recall_iou50": round(sum(s["hit"] for s in per_set.values()) / max(1, n_gt), 4),
        "plate_precision": round(tp_all / max(1, tp_all + fp_all), 4),
        "small_plate_recall_iou50": round(small_hit / max(1, small_n), 4),
        "false_plates_per_plate_free_frame": round(free_fp / max(1, free_frames), 4),
    }
    for name, key in ((ROMANIAN, "romanian"), (OPENIMAGES, "openimages")):
        s = per_set.get(name)
        if s:
            r[f"{key}_recall_iou50"] = round(s["hit"] / max(1, s["gt"]), 4)
            r[f"{key}_precision"] = round(s["tp"] / max(1, s["tp"] + s["fp"]), 4)
    if veh_n:
        r["vehicle_threshold"] = vthr
        r["vehicle_recall_iou50_openimages"] = round(veh_tp / veh_n, 4)
        r["vehicle_precision_openimages"] = round(veh_tp / max(1, veh_tp + veh_fp), 4)
    return r


def evaluate(det: PlateDetector, test: list[Scene]) -> dict[str, Any]:
    frames, times = collect(det, test)
    s = det.settings
    result: dict[str, Any] = {
        "test_frames": len(test),
        "test_plates": sum(len(f.scene.plates) for f in frames),
        "small_plates_lt80px": sum(int((f.scene.plates[:, 2] < SMALL_PX).sum()) for f in frames),
        "plate_free_frames": sum(1 for f in frames if len(f.scene.plates)),
        **at_threshold(frames, s.plate_threshold, s.vehicle_threshold),
        "plate_ap50": round(_ap(
            [x for f in frames for x in f.plate_scores.tolist()],
            [x for f in frames for x in _match(f.plates, f.plate_scores, f.scene.plates)[0]],
            sum(len(f.scene.plates) for f in frames),
        ), 4),
        "vehicle_ap50_openimages": round(_ap(
            [x for f in frames if f.scene.has_vehicle_labels for x in f.vehicle_scores.tolist()],
            [x for f in frames if f.scene.has_vehicle_labels
             for x in _match(f.vehicles, f.vehicle_scores, f.scene.vehicles)[0]],
            sum(len(f.scene.vehicles) for f in frames if f.scene.has_vehicle_labels),
        ), 4),
        "detector_ms_median": round(statistics.median(times), 2),
        "sweep": [
            {k: v for k, v in at_threshold(frames, t, t).items()
             if k in ("plate_threshold", "plate_recall_iou50", "plate_precision",
                      "small_plate_recall_iou50", "false_plates_per_plate_free_frame",
                      "vehicle_recall_iou50_openimages", "vehicle_precision_openimages")}
            for t in SWEEP
        ],
    }
    return result


def _rewrite(manifest_path: Path, key: str, metrics: dict[str, Any]) -> None:
    data = json.loads(manifest_path.read_text())
    data[key] = metrics
    manifest_path.write_text(json.dumps(data, indent=2) + "\n")
    ModelManifest.load(manifest_path)  # refuse to leave a manifest the runtime would refuse


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", type=Path, default=Path("inference/models"))
    p.add_argument("--float-dir", type=Path, default=Path("training/work/detector/float"))
    p.add_argument("--write-manifest", action="store_true")
    p.add_argument("--plate-threshold", type=float, default=DetectorSettings().plate_threshold)
    p.add_argument("--vehicle-threshold", type=float,
                   default=DetectorSettings().vehicle_threshold)
    args = p.parse_args(argv)
    _, test = splits()
    settings = DetectorSettings(plate_threshold=args.plate_threshold,
                                vehicle_threshold=args.vehicle_threshold)
    report: dict[str, Any] = {}
    with PlateDetector.load(args.model_dir, 1, settings) as det:
        report["int8"] = evaluate(det, test)
    if (args.float_dir / "detector.json").exists():
        with PlateDetector.load(args.float_dir, 1, settings) as det:
            report["float32"] = evaluate(det, test)
    print(json.dumps(report, indent=2))
    if args.write_manifest:
        for d in (args.model_dir, args.float_dir):
            path = d / "detector.json"
            if not path.exists():
                continue
            _rewrite(path, "metrics", report["int8"])
            if "float32" in report:
                _rewrite(path, "float_metrics", report["float32"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
