"""Turn a clean frontal plate into what a roadside camera sees.

:func:`augment_plate` decorates the plate (frame, bolts, dirt, glare), puts it on a background
with perspective, rotation and skew, then degrades the whole picture (motion or defocus blur,
low resolution, IR grey look, noise, JPEG). It returns the picture and the plate's four corners
in it, clockwise from top-left, so a caller can crop (OCR) or box (detector) it.
"""

from __future__ import annotations

import cv2
import numpy as np

Corners = tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]]


def _frame_and_bolts(img: np.ndarray, rng: np.random.Generator) -> None:
    H, W = img.shape[:2]
    if rng.random() < 0.35:  # dealer frame: a dark or chrome rim, thicker at the bottom
        col = (20, 20, 20) if rng.random() < 0.6 else (190, 190, 195)
        t = max(2, int(H * rng.uniform(0.03, 0.07)))
        b = max(t, int(H * rng.uniform(0.04, 0.14)))
        img[:t] = col
        img[-b:] = col
        img[:, :t] = col
        img[:, -t:] = col
    if rng.random() < 0.5:
        r = max(2, int(H * 0.035))
        for fx, fy in ((0.22, 0.1), (0.78, 0.1), (0.22, 0.9), (0.78, 0.9))[
            : int(rng.integers(2, 5))
        ]:
            c = (int(W * fx), int(H * fy))
            cv2.circle(img, c, r, (120, 120, 125), -1)
            cv2.circle(img, c, max(1, r // 2), (70, 70, 70), -1)


def _dirt(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    H, W = img.shape[:2]
    mask = np.zeros((H, W), np.float32)
    for _ in range(int(rng.integers(3, 15))):
        c = (int(rng.integers(W)), int(rng.integers(H)))
        axes = (int(rng.integers(3, max(4, W // 6))), int(rng.integers(2, max(3, H // 5))))
        cv2.ellipse(
            mask, c, axes, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(0.2, 0.6)), -1
        )
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, W / 60))[..., None]
    brown = np.array([95, 80, 60], np.float32)
    return (img * (1 - mask) + brown * mask).astype(np.uint8)


def _glare(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    H, W = img.shape[:2]
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    cx, cy = rng.uniform(0, W), rng.uniform(0, H)
    sx, sy = rng.uniform(0.1, 0.5) * W, rng.uniform(0.2, 0.8) * H
    g = np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2)) * rng.uniform(0.3, 0.85)
    return np.clip(img + g[..., None] * 255, 0, 255).astype(np.uint8)


def _background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    base = rng.uniform(0, 255, 3)
    small = rng.normal(0, 25, (4, 4, 3)).astype(np.float32)
    bg = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) + base
    bg += rng.normal(0, 6, (h, w, 3))
    return np.clip(bg, 0, 255).astype(np.uint8)


def _motion_kernel(length: int, angle: float) -> np.ndarray:
    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1
    m = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle, 1.0)
    k = cv2.warpAffine(k, m, (length, length))
    return k / max(k.sum(), 1e-6)


def augment_plate(
    rng: np.random.Generator,
    image: np.ndarray,
    night_ir: bool | None = None,
    *,
    strength: float = 1.0,
) -> tuple[np.ndarray, Corners]:
    """Degrade a clean plate (HxWx3 uint8 RGB) as a camera would; returns (picture, corners).

    ``night_ir``: force the IR grey look on or off; ``None`` draws it (25 %). ``strength`` scales
    geometric and photometric severity (0 = only placement, 1 = the training mix).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError("image must be HxWx3 uint8")
    s = float(np.clip(strength, 0.0, 1.5))
    plate = image.copy()
    _frame_and_bolts(plate, rng)
    if rng.random() < 0.3 * s:
        plate = _dirt(plate, rng)
    if rng.random() < 0.2 * s:
        plate = _glare(plate, rng)
    H, W = plate.shape[:2]
    mx, my = (rng.uniform(0.08, 0.35, 2) * np.array([W, H]) * max(s, 0.3)).astype(int) + 2
    cw, ch = W + 2 * mx, H + 2 * my
    canvas = _background(ch, cw, rng)

    src = np.float32([[0, 0], [W, 0], [W, H], [0, H]])
    j = rng.uniform(-1, 1, (4, 2)) * np.array([W, H]) * 0.06 * s
    dst = src + np.array([mx, my]) + j
    ang = np.deg2rad(rng.normal(0, 4) * s)
    shear = rng.normal(0, 0.08) * s
    c = dst.mean(axis=0)
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    sh = np.array([[1, shear], [0, 1]])
    dst = ((dst - c) @ (rot @ sh).T + c).astype(np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    warped = cv2.warpPerspective(plate, m, (cw, ch), flags=cv2.INTER_LINEAR)
    pmask = cv2.warpPerspective(np.ones((H, W), np.float32), m, (cw, ch), flags=cv2.INTER_LINEAR)
    out = (canvas * (1 - pmask[..., None]) + warped * pmask[..., None]).astype(np.float32)

    # photometric: exposure, then the IR look (retroreflective plate, no colour)
    out = out * rng.uniform(1 - 0.45 * s, 1 + 0.3 * s) + rng.uniform(-30, 30) * s
    ir = bool(rng.random() < 0.25) if night_ir is None else night_ir
    if ir:
        g = out.mean(axis=2, keepdims=True)
        g = 255 * (np.clip(g, 0, 255) / 255) ** rng.uniform(0.6, 1.4)
        out = np.repeat(g, 3, axis=2)
    out = np.clip(out, 0, 255).astype(np.uint8)

    r = rng.random()
    if r < 0.3 * s:
        ln = int(rng.integers(3, 4 + int(8 * s)))
        out = cv2.filter2D(out, -1, _motion_kernel(ln, float(rng.uniform(-30, 30))))
    elif r < 0.6 * s:
        out = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.4, 0.6 + 1.2 * s)))

    if rng.random() < 0.5 * s:  # low resolution: plate between ~40 px and its full width
        pw = float(rng.uniform(40, max(41, W)))
        f = min(1.0, pw / W)
        small = cv2.resize(
            out, (max(8, int(cw * f)), max(4, int(ch * f))), interpolation=cv2.INTER_AREA
        )
        out = cv2.resize(small, (cw, ch), interpolation=cv2.INTER_LINEAR)

    if rng.random() < 0.7:
        noise = rng.normal(0, rng.uniform(1, 1 + 10 * s), out.shape)
        out = np.clip(out + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.6:
        q = int(rng.integers(max(10, int(90 - 70 * s)), 96))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if ir:  # noise and JPEG chroma would put colour back into a monochrome IR picture
        out = np.repeat(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    corners = tuple((float(x), float(y)) for x, y in dst)
    return out, corners  # type: ignore[return-value]
