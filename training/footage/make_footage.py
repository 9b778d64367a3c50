"""Build the simulation rig's sample footage: ``firmware/sample/footage.avi`` + ``footage.json``.

Six vehicles pass a fixed camera one after another (1280x720, 10 fps, about 22 s): real vehicle
photographs (Open Images, CC BY 2.0, via the ``openimages-plates-roboflow-f8vsn`` set) whose own
plate is painted over with a synthetic plate (``training.synth.render_plate``) of known text,
moved across a real empty road (``romanian-lp-robertlucian``, MIT, with the plates of parked and
distant cars inpainted so only the ground-truth plates are readable). The last pass is a night
pass under IR (grey, dark scene, retro-reflective bright plate).

The synthetic plate is rendered and warped at the *output* resolution in every frame, so it stays
as sharp as a real plate at that size even though the vehicle photo is upscaled.

Run with the training venv (needs Pillow for the renderer)::

    .venv-train/bin/python -m training.footage.make_footage [--out firmware/sample]

Deterministic: a fixed seed and fixed plate texts; rerunning gives the same manifest (the AVI
bytes can differ between OpenCV builds).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from training.synth.render import render_plate

log = logging.getLogger(__name__)

DATA = Path(
    os.environ.get("VIGIL_DATASETS") or Path(__file__).resolve().parents[3] / "shared" / "datasets"
)
VEHICLE_SET = DATA / "openimages-plates-roboflow-f8vsn"
ROAD_SET = DATA / "romanian-lp-robertlucian"
ROAD_IMAGE = "images/romanian-lp-robertlucian-00114.jpg"

W, H = 1280, 720
FPS = 10
SEED = 20261123
CODEC = "FMP4"  # MPEG-4 part 2 in AVI: ~4x smaller than MJPEG for a fixed camera
GAP_FRAMES = 15  # empty road between vehicles: 1.5 s > the tracker's default max_gap_s
HORIZON = (640.0, 335.0)
# Also inpainted: a row of distant tail lights that the plate detector scores as a plate (0.38)
# in every frame; left in, it would be a static "plate" track for the whole replay.
EXTRA_INPAINT = (
    (180.0, 262.0, 100.0, 52.0),
)  # the road's vanishing point in the background picture


@dataclass(frozen=True)
class Pass:
    image: str  # in VEHICLE_SET
    vehicle_box: tuple[float, float, float, float]  # x, y, w, h in the 416x416 source
    plate_box: tuple[float, float, float, float]
    text: str  # as printed (display); the manifest holds the canonical text
    region: str
    style: str
    direction: str  # "approaching" (front, growing) or "receding" (rear, shrinking)
    lane_x: float  # x of the vehicle centre at the bottom of the frame
    frames: int
    width_range: tuple[float, float]  # vehicle width in px, far -> near
    night: bool = False


PASSES: tuple[Pass, ...] = (
    Pass(
        "images/train_0084.jpg",
        (79.2, 93.5, 290.5, 265.0),
        (145.5, 289.5, 95.0, 29.0),
        "7KDR482",
        "us-ca",
        "us",
        "approaching",
        330.0,
        26,
        (150.0, 600.0),
    ),
    Pass(
        "images/train_0042.jpg",
        (65.3, 32.5, 270.5, 325.0),
        (173.2, 195.0, 54.5, 41.0),
        "LMX-4821",
        "us-tx",
        "us",
        "receding",
        930.0,
        24,
        (150.0, 560.0),
    ),
    Pass(
        "images/train_0101.jpg",
        (31.5, 101.5, 323.0, 286.0),
        (144.0, 337.0, 103.0, 33.0),
        "KGT-5519",
        "us-ny",
        "us",
        "approaching",
        380.0,
        26,
        (150.0, 620.0),
    ),
    Pass(
        "images/train_0126.jpg",
        (33.0, 0.0, 337.0, 338.0),
        (114.5, 266.0, 129.0, 44.0),
        "M AB 1234",
        "eu-de",
        "eu1",
        "approaching",
        360.0,
        26,
        (95.0, 420.0),
    ),
    Pass(
        "images/train_0054.jpg",
        (31.0, 99.5, 287.0, 232.0),
        (123.5, 216.2, 105.0, 46.5),
        "BXR7730",
        "us-wa",
        "us",
        "receding",
        900.0,
        24,
        (150.0, 560.0),
    ),
    Pass(
        "images/train_0027.jpg",
        (18.8, 125.0, 349.5, 203.0),
        (134.8, 273.8, 131.5, 25.5),
        "PVR H38",
        "us-fl",
        "us",
        "approaching",
        360.0,
        26,
        (150.0, 620.0),
        night=True,
    ),
)


def _road() -> np.ndarray:
    """The background road with every labelled plate inpainted (no stray readable plate)."""
    rows = [json.loads(line) for line in (ROAD_SET / "labels.jsonl").open()]
    row = next(r for r in rows if r["image"] == ROAD_IMAGE)
    img = cv2.imread(str(ROAD_SET / ROAD_IMAGE), cv2.IMREAD_COLOR)
    if img is None or img.shape[:2] != (H, W):
        raise SystemExit(f"background {ROAD_IMAGE} missing or not {W}x{H}")
    mask = np.zeros(img.shape[:2], np.uint8)
    for x, y, w, h in [*(row.get("boxes") or [row["box"]]), *EXTRA_INPAINT]:
        cv2.rectangle(mask, (int(x - 3), int(y - 3)), (int(x + w + 3), int(y + h + 3)), 255, -1)
    return cv2.inpaint(img, mask, 5, cv2.INPAINT_TELEA)


def _night(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A dark, grey, IR-lit look: illuminator hotspot in the lower middle, sensor noise."""
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float32)
    yy, xx = np.mgrid[0:H, 0:W]
    spot = np.exp(-(((xx - W / 2) / (0.45 * W)) ** 2 + ((yy - 0.8 * H) / (0.5 * H)) ** 2))
    out = grey * (0.12 + 0.35 * spot) + rng.normal(0, 3.0, grey.shape)
    out = np.clip(out, 0, 255).astype(np.uint8)
    return cv2.cvtColor(out, cv2.COLOR_GRAY2BGR)


def _soft_mask(h: int, w: int) -> np.ndarray:
    """Alpha for a pasted vehicle: opaque centre, edges feathered so it is not a hard rectangle."""
    m = np.zeros((h, w), np.float32)
    b = max(2, int(0.06 * min(h, w)))
    m[b:-b, b:-b] = 1.0
    k = 2 * b + 1
    return cv2.GaussianBlur(m, (k, k), b / 1.5)


def _plate_quad(p: Pass, plate_aspect: float) -> np.ndarray:
    """Corners (in source-crop pixels) of the synthetic plate that covers the original plate."""
    vx, vy = p.vehicle_box[:2]
    x, y, w, h = p.plate_box
    cx, cy = x - vx + w / 2, y - vy + h / 2
    pw = w * 1.08
    ph = pw / plate_aspect
    if ph < h * 1.08:  # a tall box (the source is stretched): cover it fully
        ph = h * 1.08
        pw = ph * plate_aspect
    return np.array(
        [
            [cx - pw / 2, cy - ph / 2],
            [cx + pw / 2, cy - ph / 2],
            [cx + pw / 2, cy + ph / 2],
            [cx - pw / 2, cy + ph / 2],
        ],
        np.float32,
    )


def _paste(dst: np.ndarray, src: np.ndarray, alpha: np.ndarray, x: int, y: int) -> None:
    h, w = src.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x1 <= x0 or y1 <= y0:
        return
    s = src[y0 - y : y1 - y, x0 - x : x1 - x].astype(np.float32)
    a = alpha[y0 - y : y1 - y, x0 - x : x1 - x, None]
    d = dst[y0:y1, x0:x1].astype(np.float32)
    dst[y0:y1, x0:x1] = np.clip(a * s + (1 - a) * d, 0, 255).astype(np.uint8)


def _box_of(quad: np.ndarray) -> list[float]:
    x0, y0 = quad.min(axis=0)
    x1, y1 = quad.max(axis=0)
    x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(W, x1), min(H, y1)
    return [
        round(float(x0), 1),
        round(float(y0), 1),
        round(float(x1 - x0), 1),
        round(float(y1 - y0), 1),
    ]


def render(out_dir: Path) -> dict[str, object]:
    rng = np.random.default_rng(SEED)
    road = _road()
    night_road = _night(road, rng)
    out_dir.mkdir(parents=True, exist_ok=True)
    video_path = out_dir / "footage.avi"
    writer = cv2.VideoWriter(str(video_path), cv2.VideoWriter.fourcc(*CODEC), FPS, (W, H))
    if not writer.isOpened():
        raise SystemExit(f"OpenCV cannot write {CODEC} AVI here")

    frame_no = 0
    vehicles: list[dict[str, object]] = []

    def emit(img: np.ndarray) -> None:
        nonlocal frame_no
        writer.write(img)
        frame_no += 1

    for i, p in enumerate(PASSES):
        bg = night_road if p.night else road
        for _ in range(GAP_FRAMES):
            emit(bg)
        plate = render_plate(rng, region=p.region, text=p.text, style=p.style)
        plate_bgr = cv2.cvtColor(plate.image, cv2.COLOR_RGB2BGR)
        if p.night:
            # Retro-reflective sheeting returns the IR flash, and the dye inks of state graphics
            # are transparent to IR while the carbon-black characters absorb it: the brightest
            # channel approximates that, then a contrast stretch for the bright sheeting.
            g = plate_bgr.max(axis=2).astype(np.float32)
            g = np.clip((g - 30) * 1.25, 0, 255).astype(np.uint8)
            plate_bgr = cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)
        ph_src, pw_src = plate_bgr.shape[:2]
        src = cv2.imread(str(VEHICLE_SET / p.image), cv2.IMREAD_COLOR)
        if src is None:
            raise SystemExit(f"vehicle picture {p.image} missing from {VEHICLE_SET}")
        vx, vy, vw, vh = (int(round(v)) for v in p.vehicle_box)
        crop = src[vy : vy + vh, vx : vx + vw]
        if p.night:
            g = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.float32) * 0.45
            crop = cv2.cvtColor(g.astype(np.uint8), cv2.COLOR_GRAY2BGR)
        quad_src = _plate_quad(p, pw_src / ph_src)
        tilt = float(rng.uniform(-1.5, 1.5))  # a plate is never mounted perfectly level
        plate_pts = np.array([[0, 0], [pw_src, 0], [pw_src, ph_src], [0, ph_src]], np.float32)
        first = frame_no
        plate_boxes: list[list[float]] = []
        vehicle_boxes: list[list[float]] = []
        for k in range(p.frames):
            t = k / (p.frames - 1)
            if p.direction == "receding":
                t = 1.0 - t
            w0, w1 = p.width_range
            width = w0 * (w1 / w0) ** t  # perspective: size grows geometrically at constant speed
            scale = width / vw
            height = vh * scale
            bottom = HORIZON[1] + (H - 10 - HORIZON[1]) * (width - w0 * 0.6) / (w1 - w0 * 0.6)
            cx = HORIZON[0] + (p.lane_x - HORIZON[0]) * (bottom - HORIZON[1]) / (H - HORIZON[1])
            x, y = cx - width / 2, bottom - height
            img = bg.copy()
            size = (max(2, int(round(width))), max(2, int(round(height))))
            v_img = cv2.resize(
                crop, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            )
            if p.night:
                v_img = np.clip(v_img.astype(np.float32) * (0.5 + 0.6 * t), 0, 255).astype(np.uint8)
            _paste(img, v_img, _soft_mask(size[1], size[0]), int(round(x)), int(round(y)))
            quad = quad_src * np.float32(scale) + np.array([x, y], np.float32)
            c = quad.mean(axis=0)
            rot = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), tilt, 1.0)
            quad = cv2.transform(quad[None], rot)[0]
            m = cv2.getPerspectiveTransform(plate_pts, quad.astype(np.float32))
            warped = cv2.warpPerspective(plate_bgr, m, (W, H), flags=cv2.INTER_AREA)
            alpha = cv2.warpPerspective(np.ones((ph_src, pw_src), np.float32), m, (W, H))
            shade = 0.92 if not p.night else 1.0
            _paste(img, (warped * shade).astype(np.uint8), alpha, 0, 0)
            if p.night:
                noise = rng.normal(0, 2.0, img.shape)
                img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
            emit(img)
            plate_boxes.append(_box_of(quad))
            vehicle_boxes.append(_box_of(np.array([[x, y], [x + width, y + height]])))
        vehicles.append(
            {
                "id": i + 1,
                "text": plate.text,
                "printed": p.text,
                "region": plate.region,
                "plate_class": plate.plate_class,
                "style": plate.style,
                "direction": p.direction,
                "night": p.night,
                "first_frame": first,
                "last_frame": frame_no - 1,
                "expected_reads": 1,
                "plate_boxes": plate_boxes,
                "vehicle_boxes": vehicle_boxes,
                "vehicle_source": p.image,
            }
        )
    for _ in range(GAP_FRAMES):
        emit(night_road if PASSES[-1].night else road)
    writer.release()

    manifest: dict[str, object] = {
        "file": video_path.name,
        "codec": CODEC,
        "width": W,
        "height": H,
        "fps": FPS,
        "frames": frame_no,
        "seed": SEED,
        "generator": "training/footage/make_footage.py",
        "boxes": "x, y, w, h in pixels, one per frame of the vehicle's frame range",
        "vehicles": vehicles,
    }
    (out_dir / "footage.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("firmware/sample"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    m = render(args.out)
    size = (args.out / "footage.avi").stat().st_size
    print(f"{m['frames']} frames, {len(m['vehicles'])} vehicles, {size / 1e6:.2f} MB")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
