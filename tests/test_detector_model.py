"""The committed int8 detector on held-out frames, its refusal of broken files, frame checks."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from inference.detector import DetectorSettings, PlateDetector, as_grey
from inference.errors import FrameError, ModelError
from inference.records import Box, Detection

MODELS = Path(__file__).resolve().parents[1] / "inference" / "models"
DATA = Path(__file__).resolve().parent / "data" / "detector"
FRAMES = json.loads((DATA / "frames.json").read_text())


def _rgb(name: str) -> np.ndarray:
    bgr = cv2.imread(str(DATA / name), cv2.IMREAD_COLOR)
    assert bgr is not None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def detector() -> Iterator[PlateDetector]:
    with PlateDetector.load(MODELS) as det:
        yield det


def _found(dets: list[Detection], truth: list[list[float]], scale: float = 1.0) -> list[float]:
    """Best IoU of a plate detection for each true plate."""
    plates = [d.box for d in dets if d.label == "plate"]
    out = []
    for x, y, w, h in truth:
        t = Box(x * scale, y * scale, w * scale, h * scale)
        out.append(max((t.iou(p) for p in plates), default=0.0))
    return out


def _expected(name: str) -> list[list[float]]:
    """The frame's plates, less those frames.json records as missed by the committed model
    (each with its reason): the test then fails if the model gets worse on any other."""
    missed = set(FRAMES[name].get("missed_by_committed_model", []))
    return [b for i, b in enumerate(FRAMES[name]["plates"]) if i not in missed]


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_finds_the_plates_in_held_out_frames(detector: PlateDetector, name: str) -> None:
    dets = detector.detect(_rgb(name))
    ious = _found(dets, _expected(name))
    assert all(iou >= 0.5 for iou in ious), ious
    assert sum(d.label == "plate" for d in dets) <= len(FRAMES[name]["plates"]) + 1


def test_same_plates_in_a_1080p_and_a_grey_frame(detector: PlateDetector) -> None:
    name = "romanian-lp-robertlucian-00353.jpg"
    rgb = _rgb(name)
    big = cv2.resize(rgb, (1920, 1080), interpolation=cv2.INTER_CUBIC)
    ious = _found(detector.detect(big), _expected(name), scale=1.5)
    assert all(iou >= 0.5 for iou in ious), ious
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    ious = _found(detector.detect(grey), _expected(name))
    assert all(iou >= 0.5 for iou in ious), ious


def test_blank_frame_has_no_plates(detector: PlateDetector) -> None:
    assert detector.detect(np.full((720, 1280, 3), 90, np.uint8)) == []


def test_boxes_stay_inside_odd_sized_frames(detector: PlateDetector) -> None:
    rgb = _rgb("romanian-lp-robertlucian-00088.jpg")[100:, 300:1000]  # 700 x 620, plate inside
    dets = detector.detect(rgb)
    assert any(d.label == "plate" for d in dets)
    for d in dets:
        assert d.box.x >= 0 and d.box.y >= 0
        assert d.box.x + d.box.w <= 700 + 1e-6 and d.box.y + d.box.h <= 620 + 1e-6
        assert 0.0 < d.score <= 1.0
        if d.corners is not None:
            assert len(d.corners) == 4


@pytest.mark.parametrize(
    "frame",
    [
        None,
        "not an image",
        np.zeros((720, 1280, 3), np.float32),
        np.zeros((720, 1280, 4), np.uint8),
        np.zeros((0, 0, 3), np.uint8),
        np.zeros((8, 8, 3), np.uint8),
        np.zeros((2, 720, 1280, 3), np.uint8),
    ],
)
def test_unusable_frames_raise_frame_error(detector: PlateDetector, frame: object) -> None:
    with pytest.raises(FrameError):
        detector.detect(frame)  # type: ignore[arg-type]
    with pytest.raises(ValueError):  # FrameError is also a ValueError for generic callers
        as_grey(frame)


def _copy_models(tmp_path: Path) -> Path:
    d = tmp_path / "models"
    d.mkdir()
    for f in ("detector.tflite", "detector.json"):
        shutil.copy(MODELS / f, d / f)
    return d


def test_truncated_model_refused(tmp_path: Path) -> None:
    d = _copy_models(tmp_path)
    blob = (d / "detector.tflite").read_bytes()
    (d / "detector.tflite").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelError, match="truncated"):
        PlateDetector.load(d)


def test_corrupted_model_of_the_same_size_refused(tmp_path: Path) -> None:
    d = _copy_models(tmp_path)
    blob = bytearray((d / "detector.tflite").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (d / "detector.tflite").write_bytes(bytes(blob))
    with pytest.raises(ModelError, match="SHA-256"):
        PlateDetector.load(d)


def test_manifest_without_detector_labels_refused(tmp_path: Path) -> None:
    d = _copy_models(tmp_path)
    m = json.loads((d / "detector.json").read_text())
    m["labels"] = {}
    (d / "detector.json").write_text(json.dumps(m))
    with pytest.raises(ModelError, match="labels"):
        PlateDetector.load(d)


def test_missing_model_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        PlateDetector.load(tmp_path)


def test_manifest_records_held_out_metrics() -> None:
    m = json.loads((MODELS / "detector.json").read_text())
    for key in ("plate_recall_iou50", "plate_precision", "small_plate_recall_iou50",
                "false_plates_per_plate_free_frame"):
        assert m["metrics"][key] >= 0.0 and key in m["float_metrics"]
    assert m["size_bytes"] < 2_000_000


@pytest.mark.parametrize(
    "kwargs",
    [{"plate_threshold": 1.5}, {"vehicle_threshold": -0.1}, {"nms_iou": 2.0},
     {"max_detections": 0}],
)
def test_settings_ranges(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        DetectorSettings(**kwargs)  # type: ignore[arg-type]


def test_windows_cover_the_frame_and_overlap() -> None:
    from inference.detector import TILE_OVERLAP, window_starts

    assert window_starts(1000, 1280) == [0]
    for total, size in ((3840, 1280), (2160, 768), (5000, 1280), (1281, 1280)):
        starts = window_starts(total, size)
        assert starts[0] == 0 and starts[-1] == total - size
        gaps = np.diff(starts)
        assert (gaps <= size * (1 - TILE_OVERLAP) + 1).all(), (total, starts)


def test_a_4k_frame_is_looked_at_in_windows() -> None:
    """Four held-out 1280x720 frames laid into a 3840x2160 one, every plate at its native
    pixels: the whole-frame pass sees them at a sixth of their size; the windows find them."""
    names = sorted(FRAMES)[:4]
    canvas = np.zeros((2160, 3840, 3), np.uint8)
    truth = []
    for k, name in enumerate(names):
        x0, y0 = (k % 3) * 1280, (k // 3) * 720 + 720
        canvas[y0 : y0 + 720, x0 : x0 + 1280] = _rgb(name)
        truth += [[x + x0, y + y0, w, h] for x, y, w, h in _expected(name)]
    with PlateDetector.load(MODELS) as whole:
        missed = sum(iou < 0.5 for iou in _found(whole.detect(canvas), truth))
    with PlateDetector.load(MODELS, settings=DetectorSettings(tile_scale=0.5)) as tiled:
        dets = tiled.detect(canvas)
    ious = _found(dets, truth)
    assert all(iou >= 0.5 for iou in ious), ious
    assert missed >= len(truth) // 2  # what the windows are for
    # as many false plates as the frames give on their own (one each at most, above)
    assert sum(d.label == "plate" for d in dets) <= sum(
        len(FRAMES[n]["plates"]) + 1 for n in names
    )


def _constants(path: Path) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interp.allocate_tensors()
    computed = {i for op in interp._get_ops_details() for i in op["outputs"]}
    computed |= {d["index"] for d in interp.get_input_details()}
    return {
        d["name"]: interp.get_tensor(d["index"]).copy()
        for d in interp.get_tensor_details()
        if d["index"] not in computed and d["name"]  # unnamed: kernels' scratch
    }


def test_window_model_holds_the_detectors_weights_for_half_the_input() -> None:
    """detector_window is detector.tflite for a 320x192 input (training.detector.window_model):
    every weight and quantisation identical, only the shapes the upsampling spells out differ."""
    window = json.loads((MODELS / "detector_window.json").read_text())
    full = json.loads((MODELS / "detector.json").read_text())
    assert window["labels"]["same_weights_as"]["sha256"] == full["sha256"]
    assert window["inputs"][0]["shape"] == [1, 192, 320, 1]
    assert window["inputs"][0]["quantization"] == full["inputs"][0]["quantization"]
    a, b = _constants(MODELS / "detector.tflite"), _constants(MODELS / "detector_window.tflite")
    weights = [k for k, v in a.items() if v.ndim >= 1 and v.size > 8]
    assert len(weights) >= 40
    for k in weights:
        assert np.array_equal(a[k], b[k]), k


def test_the_committed_detector_takes_its_window_model(detector: PlateDetector) -> None:
    assert detector.window_hw == (192, 320)  # so the held-out frames above ran through it


def test_window_model_of_another_detector_refused(tmp_path: Path) -> None:
    d = _copy_models(tmp_path)
    for f in ("detector_window.tflite", "detector_window.json"):
        shutil.copy(MODELS / f, d / f)
    m = json.loads((d / "detector_window.json").read_text())
    m["labels"]["same_weights_as"]["sha256"] = "0" * 64
    (d / "detector_window.json").write_text(json.dumps(m))
    with pytest.raises(ModelError, match="was not made from"):
        PlateDetector.load(d)


def test_without_a_window_model_every_pass_runs_the_whole_frame_model(tmp_path: Path) -> None:
    with PlateDetector.load(_copy_models(tmp_path)) as det:
        assert det.window_hw == det.input_hw == (384, 640)
        name = sorted(FRAMES)[0]
        assert all(iou >= 0.5 for iou in _found(det.detect(_rgb(name)), _expected(name)))
