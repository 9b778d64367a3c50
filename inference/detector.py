"""Find plates (and vehicles) in a whole frame with the int8 CenterNet detector.

The model contract comes from its manifest (``detector.json``): input size, stride, class order
and whether the corner head was trained (``labels``). A frame of any size is converted to grey,
letterboxed top-left into the model input, and the boxes are mapped back to frame pixels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from drivers.resource import Closing
from inference.errors import FrameError, ModelError
from inference.geometry import (
    Letterbox,
    decode_centernet,
    distinct_plates,
    letterbox,
    letterbox_scale,
    nms,
    quad_is_plausible,
)
from inference.records import Box, Corners, Detection
from inference.runtime import TFLiteModel, quantize

log = logging.getLogger(__name__)

MODEL_NAME = "detector"
# The same weights for a smaller input (training.detector.window_model): the passes that look at
# part of a frame (a plate's second look, the zoom-out pass) fit in it and cost a quarter.
WINDOW_MODEL_NAME = "detector_window"
MIN_FRAME_SIDE = 16
# A second look's plate whose centre is within this many plate widths + heights of the first
# box's is the same plate.
SAME_PLATE_DIST = 0.6


@dataclass(frozen=True)
class DetectorSettings:
    """Detection thresholds and passes (not configurable: the defaults are the measured ones;
    still photos get windows and close-ups through ``PlateEngine.load``).

    ``plate_threshold`` / ``vehicle_threshold``: minimum heatmap score, 0..1 (defaults 0.4 / 0.2,
    from the held-out threshold sweep in ``docs/models-detector.md``; lower finds more distant
    plates and more false ones). ``nms_iou``: boxes of one class
    overlapping more than this are merged, 0..1. ``max_detections``: per class and frame.
    ``refine_plate_px``: each plate found is looked at again in a window of the frame scaled so
    the plate spans this many model-input pixels, and takes that pass's tighter box (0: off;
    the whole-frame pass sees a distant plate at a few pixels and boxes it loosely).
    ``refine_max``: plates refined per frame, best first. ``zoom_out``: when the whole-frame
    pass finds no plate, look again at the frame shrunk this many times more, centred on a plain
    canvas (0: off): a photo that is mostly plate puts it far beyond the 200 px the model was
    trained on; shrunk, it is in range (docs/models-detector.md). ``close_up_width``: when
    above 0, the zoom-out pass runs even when the whole-frame pass found plates, and adds those
    it finds at least this share of the frame wide: in a close-up photo the whole-frame pass
    boxes the plate's stickers, county name or half its registration, never the plate itself
    (still photos only; one more pass per photo). ``max_trained_px``: the widest plate, in input
    pixels, the model was trained to box (about 200; 0: no limit). A plate the whole-frame pass
    saw wider takes its second look in the frame shrunk until it spans ``refine_plate_px`` (the
    second look's window would otherwise be the whole frame, and the box stays as the
    whole-frame pass made it: shifted, cut short or swollen); a window of the tile pass ignores
    plates it sees wider (the whole-frame pass sees them in range; the window boxes their
    county names, slogans and rows). ``tile_scale``: when the
    whole-frame pass sees the frame at less than two thirds of this scale, look at it again in
    overlapping windows at this scale (0: off): a 4K frame is seen at a sixth of its size, where
    a plate 80 px wide spans 13 input pixels and is lost. ``window_refine``: the second look
    runs in the window model (``detector_window``, a quarter of the cost) when there is one; on
    the dev part that boxed 3 of 790 plates worse and reported more false plates a frame, a
    price the daemon pays for frames (it votes over many), still photos do not (the zoom-out
    pass runs in the window model in any case: the same answers on the smaller canvas).
    """

    plate_threshold: float = 0.4
    vehicle_threshold: float = 0.2
    nms_iou: float = 0.5
    max_detections: int = 32
    refine_plate_px: int = 120
    refine_max: int = 4
    zoom_out: float = 4.0
    close_up_width: float = 0.0
    max_trained_px: float = 200.0
    tile_scale: float = 0.0
    window_refine: bool = True

    def __post_init__(self) -> None:
        for name in ("plate_threshold", "vehicle_threshold", "nms_iou"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        if self.max_detections < 1:
            raise ValueError(f"max_detections must be >= 1, got {self.max_detections}")
        if not (self.refine_plate_px == 0 or 32 <= self.refine_plate_px <= 320):
            raise ValueError(f"refine_plate_px must be 0 or 32..320, got {self.refine_plate_px}")
        if not 0 <= self.refine_max <= 64:
            raise ValueError(f"refine_max must be 0..64, got {self.refine_max}")
        if not (self.zoom_out == 0 or 1.5 <= self.zoom_out <= 8):
            raise ValueError(f"zoom_out must be 0 or 1.5..8, got {self.zoom_out}")
        if not (self.close_up_width == 0 or 0.2 <= self.close_up_width <= 1.0):
            raise ValueError(f"close_up_width must be 0 or 0.2..1, got {self.close_up_width}")
        if self.close_up_width and not self.zoom_out:
            raise ValueError("close_up_width needs the zoom-out pass (zoom_out > 0)")
        if not (self.max_trained_px == 0 or 100 <= self.max_trained_px <= 640):
            raise ValueError(f"max_trained_px must be 0 or 100..640, got {self.max_trained_px}")
        if not (self.tile_scale == 0 or 0.2 <= self.tile_scale <= 1.0):
            raise ValueError(f"tile_scale must be 0 or 0.2..1, got {self.tile_scale}")


# A close-up plate (``DetectorSettings.close_up_width``) overlapped by a plate the whole-frame
# pass found at least this share as wide is that plate, found twice; narrower ones overlapping
# it are what the whole-frame pass makes of a close-up (a sticker, half the registration).
CLOSE_UP_SAME_WIDTH = 0.8


# Windows of the tile pass overlap by this share of their size, so that a plate cut by one
# window's edge is whole in the next (plates wider than the overlap are the whole-frame pass's).
TILE_OVERLAP = 0.25


def wants_windows(seen_scale: float, window_scale: float) -> bool:
    """Whether a frame the whole-frame pass sees at ``seen_scale`` is also looked at in windows
    at ``window_scale`` (0: never): when it is seen at under two thirds of that scale."""
    return bool(window_scale) and seen_scale < window_scale * 2 / 3


def window_starts(total: int, size: int, overlap: float = TILE_OVERLAP) -> list[int]:
    """Evenly spread starts of windows ``size`` long covering ``total``, overlapping by at least
    ``overlap`` of ``size``."""
    if size >= total:
        return [0]
    n = int(np.ceil((total - size) / (size * (1.0 - overlap)))) + 1
    return [round(i * (total - size) / (n - 1)) for i in range(n)]


def as_grey(frame: object) -> np.ndarray:
    """Validate a frame (HxWx3 RGB or HxW grey, uint8) and return it grey.

    Raises :class:`FrameError` for anything else (wrong type, dtype, shape, or too small).
    """
    if not isinstance(frame, np.ndarray):
        raise FrameError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise FrameError(f"frame must be uint8, got {frame.dtype}")
    if frame.ndim in (2, 3) and min(frame.shape[:2]) < MIN_FRAME_SIDE:
        h, w = frame.shape[:2]
        raise FrameError(f"frame {w}x{h} is smaller than {MIN_FRAME_SIDE} px")
    if frame.ndim == 3 and frame.shape[2] == 3:
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    elif frame.ndim == 3 and frame.shape[2] == 1:
        grey = frame[:, :, 0]
    elif frame.ndim == 2:
        grey = frame
    else:
        raise FrameError(f"frame must be HxWx3 RGB or HxW grey, got shape {frame.shape}")
    return grey


class PlateDetector(Closing):
    """The detector model plus its pre- and post-processing. One per worker thread.

    ``window`` is the same detector for a smaller input (``detector_window``), used by the
    passes whose canvas fits in it; without it every pass runs the whole-frame model.
    """

    def __init__(
        self, model: TFLiteModel, settings: DetectorSettings, window: TFLiteModel | None = None
    ) -> None:
        self._model = model
        self._window = window
        self.settings = settings
        labels = model.manifest.labels
        try:
            self.classes: tuple[str, ...] = tuple(labels["classes"])
            self.stride = int(labels["stride"])
            self.corners_trained = bool(labels.get("corners_trained", False))
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"detector manifest labels incomplete: {e}") from e
        if "plate" not in self.classes:
            raise ModelError(f"detector classes {self.classes} have no 'plate'")
        spec = model.manifest.input("image")
        if len(spec.shape) != 4 or spec.shape[0] != 1 or spec.shape[3] != 1:
            raise ModelError(f"detector input must be 1xHxWx1 grey, manifest says {spec.shape}")
        self.input_hw: tuple[int, int] = (spec.shape[1], spec.shape[2])
        self.window_hw = self.input_hw
        if window is not None:
            self.window_hw = _window_hw(window, model)
        # Pixel -> input tensor value in one table lookup instead of float maths per frame.
        levels = np.arange(256, dtype=np.float32) / 255.0
        self._lut = quantize(levels, spec) if spec.quantized else levels
        for name in ("heatmap", "offset", "size"):
            model.manifest.output(name)

    @classmethod
    def load(
        cls,
        model_dir: Path,
        threads: int = 1,
        settings: DetectorSettings | None = None,
        name: str = MODEL_NAME,
    ) -> PlateDetector:
        model = TFLiteModel.load(model_dir, name, threads)
        window = None
        try:
            if name == MODEL_NAME and (model_dir / f"{WINDOW_MODEL_NAME}.json").is_file():
                window = TFLiteModel.load(model_dir, WINDOW_MODEL_NAME, threads)
            return cls(model, settings or DetectorSettings(), window)
        except BaseException:
            model.close()
            if window is not None:
                window.close()
            raise

    @property
    def manifest_name(self) -> str:
        return self._model.manifest.name

    def raw(
        self, frame: np.ndarray, window: bool = False
    ) -> tuple[dict[str, np.ndarray], Letterbox]:
        """Model outputs (dequantised, batch dim dropped) for ``frame`` and its letterbox;
        ``window``: in the window model (the whole-frame one where there is none)."""
        boxed, lb = letterbox(as_grey(frame), self.window_hw if window else self.input_hw)
        return self._run(boxed, window), lb

    def _run(self, boxed: np.ndarray, window: bool = False) -> dict[str, np.ndarray]:
        """Model outputs for one grey image already the size of the input (``window``: of the
        window model's input, ``window_hw``)."""
        model = self._window if window and self._window is not None else self._model
        out = model.run(self._lut[boxed][None, :, :, None])
        return {k: v[0] for k, v in out.items()}

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Every plate and vehicle in ``frame``, best first per class, boxes in frame pixels."""
        out, lb = self.raw(frame)
        found = self.decode(out, lb)
        windows = 1
        if wants_windows(lb.scale, self.settings.tile_scale):
            tiles, windows = self.tiled(frame, self.settings.tile_scale)
            found = self._merge_plates(found, tiles, windows)
        # A close-up's plate is not refined: the second pass would see it beyond its sizes again,
        # and box the state name or a sticker on it instead.
        close: list[Detection] = []
        if self.settings.zoom_out and not any(d.label == "plate" for d in found):
            found = found + self.zoomed_out(frame, self.settings.zoom_out)
        elif self.settings.close_up_width:
            close = self._close_ups(frame, found)
        if self.settings.refine_plate_px <= 0 or self.settings.refine_max <= 0:
            return close + found
        budget = self.settings.refine_max * windows  # the same budget per window's area
        refined = close
        for d in found:
            if d.label == "plate" and budget > 0:
                budget -= 1
                d = self.refine(frame, d)
            refined.append(d)
        return refined

    def tiled(self, frame: np.ndarray, scale: float) -> tuple[list[Detection], int]:
        """Plates in overlapping windows of ``frame``, each seen at ``scale``, boxes in frame
        pixels, and how many windows. A box touching a window edge inside the frame is a plate
        the window cuts: the overlapping window has it whole; one wider than ``max_trained_px``
        input pixels is the whole-frame pass's to box."""
        grey = as_grey(frame)
        fh, fw = grey.shape
        ih, iw = self.input_hw
        ww, wh = min(fw, round(iw / scale)), min(fh, round(ih / scale))
        found: list[Detection] = []
        ys, xs = window_starts(fh, wh), window_starts(fw, ww)
        for y0 in ys:
            for x0 in xs:
                out, lb = self.raw(grey[y0 : y0 + wh, x0 : x0 + ww])
                for d in self.decode(out, lb):
                    b = d.box
                    if self._beyond_trained(b.w * lb.scale):
                        continue
                    cut = (
                        (x0 > 0 and b.x <= 1)
                        or (y0 > 0 and b.y <= 1)
                        or (x0 + ww < fw and b.x + b.w >= ww - 1)
                        or (y0 + wh < fh and b.y + b.h >= wh - 1)
                    )
                    if d.label == "plate" and not cut:
                        found.append(d.moved(x0, y0))
        return found, len(ys) * len(xs)

    def _merge_plates(
        self, found: list[Detection], more: list[Detection], windows: int
    ) -> list[Detection]:
        """``found`` plus the plates of ``more`` that no better plate overlaps, best first, up
        to ``max_detections`` per window."""
        plates = [d for d in found if d.label == "plate"] + more
        if not plates:
            return found
        boxes = np.array([[d.box.x, d.box.y, d.box.w, d.box.h] for d in plates], np.float32)
        scores = np.array([d.score for d in plates], np.float32)
        keep = distinct_plates(boxes, scores, self.settings.nms_iou)
        kept = [plates[k] for k in keep][: self.settings.max_detections * windows]
        return kept + [d for d in found if d.label != "plate"]

    def _close_ups(self, frame: np.ndarray, found: list[Detection]) -> list[Detection]:
        """The zoom-out pass's plates at least ``close_up_width`` of ``frame`` wide that no plate
        in ``found`` already boxes: one overlapping it (by half the smaller box) and at least
        :data:`CLOSE_UP_SAME_WIDTH` as wide is the same plate, found by both passes."""
        wide = self.settings.close_up_width * frame.shape[1]
        plates = [d.box for d in found if d.label == "plate"]
        return [
            d
            for d in self.zoomed_out(frame, self.settings.zoom_out)
            if d.box.w >= wide
            and not any(b.overlaps(d.box) and b.w >= CLOSE_UP_SAME_WIDTH * d.box.w for b in plates)
        ]

    def zoomed_out(self, frame: np.ndarray, factor: float) -> list[Detection]:
        """Plates in ``frame`` shrunk ``factor`` times below its letterbox scale and centred on a
        canvas of its mean grey; boxes in frame pixels (no corners: the reader takes the box)."""
        grey = as_grey(frame)
        fh, fw = grey.shape
        ih, iw = self.input_hw
        scale = min(iw / fw, ih / fh) / factor
        nw, nh = max(1, round(fw * scale)), max(1, round(fh * scale))
        small = cv2.resize(grey, (nw, nh), interpolation=cv2.INTER_AREA)
        # The same scale on the window model's smaller canvas when the shrunk frame fits it.
        in_window = nh <= self.window_hw[0] and nw <= self.window_hw[1]
        if in_window:
            ih, iw = self.window_hw
        canvas = np.full((ih, iw), int(small.mean()), np.uint8)
        x0, y0 = (iw - nw) // 2, (ih - nh) // 2
        canvas[y0 : y0 + nh, x0 : x0 + nw] = small
        out = self._run(canvas, window=in_window)
        same = Letterbox(scale=1.0, frame_hw=(ih, iw), input_hw=(ih, iw))
        found = []
        for d in self.decode(out, same):
            if d.label != "plate":
                continue
            bx0 = max(0.0, (d.box.x - x0) / scale)
            by0 = max(0.0, (d.box.y - y0) / scale)
            bx1 = min(float(fw), (d.box.x + d.box.w - x0) / scale)
            by1 = min(float(fh), (d.box.y + d.box.h - y0) / scale)
            if bx1 - bx0 >= 2 and by1 - by0 >= 2:
                found.append(Detection(Box(bx0, by0, bx1 - bx0, by1 - by0), d.score, "plate"))
        return found

    def _beyond_trained(self, input_px: float) -> bool:
        """Whether a plate ``input_px`` wide in the model input is wider than it was trained on."""
        return bool(self.settings.max_trained_px) and input_px > self.settings.max_trained_px

    def _refine_shrunk(self, frame: np.ndarray, det: Detection) -> Detection:
        """``det`` re-measured in ``frame`` shrunk until it spans ``refine_plate_px`` input pixels,
        when the whole-frame pass saw it wider than ``max_trained_px``; else unchanged."""
        seen = det.box.w * letterbox_scale(frame.shape[:2], self.input_hw)
        if not self._beyond_trained(seen):
            return det
        return _nearest(det, self.zoomed_out(frame, seen / self.settings.refine_plate_px))

    def refine(self, frame: np.ndarray, det: Detection) -> Detection:
        """``det`` re-measured in a window where the plate spans ``refine_plate_px`` input
        pixels (:meth:`_refine_shrunk` when that window would be the whole frame); unchanged
        when the pass finds no plate near the first box."""
        b = det.box
        in_window = self.settings.window_refine
        ih, iw = self.window_hw if in_window else self.input_hw
        fh, fw = frame.shape[:2]
        scale = self.settings.refine_plate_px / max(b.w, 1.0)
        win_w, win_h = iw / scale, ih / scale
        if win_w >= fw and win_h >= fh:
            return self._refine_shrunk(frame, det)
        x0 = int(max(0.0, min(b.cx - win_w / 2, fw - win_w)))
        y0 = int(max(0.0, min(b.cy - win_h / 2, fh - win_h)))
        window = frame[y0 : y0 + int(np.ceil(win_h)), x0 : x0 + int(np.ceil(win_w))]
        if min(window.shape[:2]) < MIN_FRAME_SIDE:
            return det
        out, lb = self.raw(window, in_window)
        return _nearest(det, [e.moved(x0, y0) for e in self.decode(out, lb)])

    def decode(
        self,
        out: dict[str, np.ndarray],
        lb: Letterbox,
        plate_threshold: float | None = None,
        vehicle_threshold: float | None = None,
    ) -> list[Detection]:
        """Detections from raw outputs; thresholds default to the settings'."""
        s = self.settings
        found: list[Detection] = []
        for ci, label in enumerate(self.classes):
            if label == "plate":
                thr = s.plate_threshold if plate_threshold is None else plate_threshold
            else:
                thr = s.vehicle_threshold if vehicle_threshold is None else vehicle_threshold
            with_corners = label == "plate" and self.corners_trained and "corners" in out
            dec = decode_centernet(
                out["heatmap"][:, :, ci],
                out["offset"],
                out["size"],
                self.stride,
                thr,
                s.max_detections * 2,
                out["corners"] if with_corners else None,
            )
            if label == "plate":
                keep = distinct_plates(dec.boxes, dec.scores, s.nms_iou)
            else:
                keep = nms(dec.boxes, dec.scores, s.nms_iou)
            keep = keep[: s.max_detections]
            frame_boxes = lb.boxes_to_frame(dec.boxes[keep])
            for j, k in enumerate(keep):
                fb = frame_boxes[j]
                if fb[2] < 1 or fb[3] < 1:
                    continue
                corners: Corners | None = None
                if dec.corners is not None:
                    quad = lb.points_to_frame(dec.corners[k])
                    if quad_is_plausible(quad, fb):
                        corners = tuple((float(px), float(py)) for px, py in quad)  # type: ignore[assignment]
                found.append(
                    Detection(
                        box=Box(float(fb[0]), float(fb[1]), float(fb[2]), float(fb[3])),
                        score=float(dec.scores[k]),
                        label=label,
                        corners=corners,
                    )
                )
        return found

    def close(self) -> None:
        self._model.close()
        if self._window is not None:
            self._window.close()


def _nearest(det: Detection, found: list[Detection]) -> Detection:
    """The plate of ``found`` (frame pixels) nearest ``det``, with ``det``'s score, or ``det``
    when none is within :data:`SAME_PLATE_DIST` of it."""
    b = det.box
    best: Detection | None = None
    best_dist = SAME_PLATE_DIST
    for e in found:
        if e.label != "plate":
            continue
        dist = abs(e.box.cx - b.cx) / b.w + abs(e.box.cy - b.cy) / b.h
        if dist < best_dist:
            best, best_dist = e, dist
    return det if best is None else replace(best, score=det.score)


def _window_hw(window: TFLiteModel, model: TFLiteModel) -> tuple[int, int]:
    """The window model's input size, once it is known to hold ``model``'s weights."""
    same = window.manifest.labels.get("same_weights_as")
    if not isinstance(same, dict) or same.get("sha256") != model.manifest.sha256:
        raise ModelError(
            f"{window.manifest.name} was not made from this {model.manifest.name} "
            f"(sha256 {model.manifest.sha256[:12]}...): run training.detector.window_model again"
        )
    spec, full = window.manifest.input("image"), model.manifest.input("image")
    if (
        len(spec.shape) != 4
        or spec.shape[3] != 1
        or spec.shape[1] > full.shape[1]
        or spec.shape[2] > full.shape[2]
    ):
        raise ModelError(f"{window.manifest.name} input {spec.shape} is not a smaller grey input")
    if spec.quantization != full.quantization or spec.dtype != full.dtype:
        raise ModelError(f"{window.manifest.name} input is not quantised like the detector's")
    return (spec.shape[1], spec.shape[2])
