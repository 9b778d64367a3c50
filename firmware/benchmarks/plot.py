"""Line plots of benchmark series as a PNG, drawn with Pillow (already a runtime dependency;
matplotlib is not one). One panel per series, stacked, sharing the time axis."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

WIDTH = 900
PANEL_H = 200
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 70, 20, 30, 30
COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189))


def _label(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 or v == int(v) else f"{v:.2f}"


def plot_series(path: Path, t_s: Sequence[float],
                series: Sequence[tuple[str, Sequence[float]]], title: str = "") -> None:
    """Write ``series`` (name, values, one value per ``t_s``) against seconds as a PNG."""
    if not t_s or any(len(v) != len(t_s) for _, v in series):
        raise ValueError("every series needs one value per time, and at least one time")
    height = MARGIN_T + len(series) * (PANEL_H + MARGIN_B)
    img = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(img)
    draw.text((MARGIN_L, 8), title, fill="black")
    t_lo, t_hi = min(t_s), max(t_s)
    t_span = (t_hi - t_lo) or 1.0
    plot_w = WIDTH - MARGIN_L - MARGIN_R
    for i, (name, values) in enumerate(series):
        top = MARGIN_T + i * (PANEL_H + MARGIN_B)
        bottom = top + PANEL_H
        lo, hi = min(values), max(values)
        pad = (hi - lo) * 0.05 or max(abs(hi) * 0.05, 1.0)
        lo, hi = lo - pad, hi + pad
        draw.rectangle((MARGIN_L, top, WIDTH - MARGIN_R, bottom), outline="grey")
        for frac in (0.0, 0.5, 1.0):
            y = bottom - frac * PANEL_H
            draw.line((MARGIN_L - 4, y, MARGIN_L, y), fill="black")
            draw.text((4, y - 6), _label(lo + frac * (hi - lo)), fill="black")
        draw.text((MARGIN_L + 6, top + 4), name, fill=COLOURS[i % len(COLOURS)])
        points = [(MARGIN_L + (t - t_lo) / t_span * plot_w,
                   bottom - (v - lo) / (hi - lo) * PANEL_H)
                  for t, v in zip(t_s, values, strict=True)]
        if len(points) > 1:
            draw.line(points, fill=COLOURS[i % len(COLOURS)], width=2)
        else:
            draw.point(points, fill=COLOURS[i % len(COLOURS)])
        draw.text((MARGIN_L, bottom + 4), f"{t_lo:.0f} s", fill="black")
        draw.text((WIDTH - MARGIN_R - 60, bottom + 4), f"{t_hi:.0f} s", fill="black")
    img.save(path, format="PNG")
