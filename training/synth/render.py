"""Render clean, frontal synthetic plates with their canonical text.

Each style draws a background (a real blank US state design, an EU band plate, a Brazilian
Mercosur or old grey plate, or a paper temporary tag), then the registration in a plate-like
font. Decorations that are not part of the registration (stacked small letters, stickers,
state slogans, the EU country code) are drawn but never put in ``text``, matching how the real
ground truth we train on is labelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from training.synth import formats
from training.synth.assets import (
    HELDOUT_FONTS,
    TRAIN_FONT_WEIGHTS,
    TRAIN_FONTS,
    font_path,
    us_templates,
)

US_SIZE = (320, 160)  # w, h: 12 x 6 inch, 2:1
EU1_SIZE = (520, 110)  # 520 x 110 mm, ~4.7:1
EU2_SIZE = (340, 200)  # two-row EU (e.g. 340 x 200 mm)
BR_SIZE = (400, 130)  # Mercosur 400 x 130 mm, ~3.1:1
BR2_SIZE = (200, 170)  # Mercosur motorcycle, two rows

# Brazil's Mercosur plates are lettered in FE-Schrift, the German anti-forgery face (its letters
# and digits differ where generic faces' do not: O / 0, I / 1, B / 8); GL-Nummernschild draws it.
MERCOSUR_FONT = "GL-Nummernschild-Mtl.ttf"

STYLES = ("us", "paper", "eu1", "eu2", "mercosur", "mercosur2", "grey", "grey2")
TWO_ROW_STYLES = frozenset(("eu2", "mercosur2", "grey2"))
_STYLE_BY_REGION = {
    "us": ("us", "paper"),
    "eu": ("eu1", "eu2"),
    # grey2 (the pre-Mercosur motorcycle plate) is drawn only when asked for: it came after
    # the detector's synthetic data was fixed, whose draws must not change.
    "br": ("mercosur", "mercosur2", "grey", "grey2"),
}


@dataclass(frozen=True, eq=False)
class SynthPlate:
    """A clean frontal plate. ``image`` is HxWx3 uint8 RGB; ``text`` canonical A-Z0-9."""

    image: np.ndarray = field(repr=False)
    text: str
    region: str  # "us-ca", "eu-de", "br"
    rows: int
    plate_class: str  # "full" or "paper"
    style: str
    font: str


@lru_cache(maxsize=64)
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path(name)), size)


def _pick_font(rng: np.random.Generator, split: str) -> str:
    if split == "test":
        return HELDOUT_FONTS[int(rng.integers(len(HELDOUT_FONTS)))]
    if split != "train":
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return TRAIN_FONTS[int(rng.choice(len(TRAIN_FONTS), p=TRAIN_FONT_WEIGHTS))]


def text_mask(text: str, font: str, size: int = 96) -> np.ndarray:
    """Tight float mask (0..1) of ``text`` drawn at ``size`` px; resized later to its box."""
    f = _font(font, size)
    left, t, r, b = f.getbbox(text)
    img = Image.new("L", (r - left + 8, b - t + 8), 0)
    ImageDraw.Draw(img).text((4 - left, 4 - t), text, font=f, fill=255)
    a = np.asarray(img, dtype=np.float32) / 255.0
    ys, xs = np.nonzero(a > 0.05)
    if len(xs) == 0:
        return np.zeros((1, 1), np.float32)
    return a[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _draw_text(
    canvas: np.ndarray,
    text: str,
    font: str,
    box: tuple[float, float, float, float],
    color: tuple[int, int, int],
    rng: np.random.Generator,
    emboss: bool = False,
) -> None:
    """Draw ``text`` to fill the height of ``box`` (x0, y0, x1, y1), squeezed to fit its width."""
    if not text:
        return
    mask = text_mask(text, font)
    x0, y0, x1, y1 = box
    bh = max(2, int(round(y1 - y0)))
    w = mask.shape[1] * bh / mask.shape[0] * float(rng.uniform(0.85, 1.1))
    w = max(2, int(round(min(w, x1 - x0))))
    m = cv2.resize(mask, (w, bh), interpolation=cv2.INTER_AREA)
    cx = (x0 + x1) / 2 + float(rng.uniform(-0.03, 0.03)) * (x1 - x0 - w)
    px = int(round(cx - w / 2))
    py = int(round(y0))
    H, W = canvas.shape[:2]
    xa, ya, xb, yb = max(px, 0), max(py, 0), min(px + w, W), min(py + bh, H)
    if xb <= xa or yb <= ya:
        return
    m = m[ya - py : yb - py, xa - px : xb - px, None]
    region = canvas[ya:yb, xa:xb].astype(np.float32)
    if emboss:  # raised letters cast a faint shadow down-right
        sh = np.roll(np.roll(m, 2, axis=0), 2, axis=1) * 0.35
        region = region * (1 - sh)
    col = np.array(color, np.float32)
    canvas[ya:yb, xa:xb] = np.clip(region * (1 - m) + col * m, 0, 255).astype(np.uint8)


def _dark_color(rng: np.random.Generator) -> tuple[int, int, int]:
    palette = [(15, 15, 20), (20, 30, 95), (25, 40, 120), (130, 20, 25), (15, 80, 45), (90, 20, 40)]
    return palette[int(rng.integers(len(palette)))]


def _sticker(canvas: np.ndarray, rng: np.random.Generator) -> None:
    H, W = canvas.shape[:2]
    sw, sh = int(W * rng.uniform(0.08, 0.14)), int(H * rng.uniform(0.12, 0.2))
    x = int(rng.choice([rng.uniform(0.03, 0.1), rng.uniform(0.78, 0.88)]) * W)
    y = int(rng.uniform(0.04, 0.12) * H)
    col = tuple(int(c) for c in rng.integers(0, 256, 3))
    cv2.rectangle(canvas, (x, y), (x + sw, y + sh), col, -1)
    cv2.putText(
        canvas,
        str(int(rng.integers(10, 30))),
        (x + 2, y + sh - 3),
        cv2.FONT_HERSHEY_SIMPLEX,
        sh / 40,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )


def _render_us(rng: np.random.Generator, state: str, text: str, font: str) -> np.ndarray:
    designs = us_templates()[state]
    tpl = designs[int(rng.integers(len(designs)))]
    W, H = US_SIZE
    canvas = cv2.resize(tpl, (W, H), interpolation=cv2.INTER_AREA)
    band = canvas[int(0.25 * H) : int(0.8 * H), int(0.1 * W) : int(0.9 * W)]
    light_bg = float(band.mean()) > 110
    color = _dark_color(rng) if light_bg else (240, 240, 235)
    if rng.random() < 0.5:
        _sticker(canvas, rng)
    x0, x1 = 0.06 * W, 0.94 * W
    if rng.random() < 0.12:  # stacked small letters on the left, not part of the registration
        a, b = formats.fill(rng, "L"), formats.fill(rng, "L")
        sh = 0.2 * H
        _draw_text(canvas, a, font, (0.05 * W, 0.3 * H, 0.12 * W, 0.3 * H + sh), color, rng)
        _draw_text(canvas, b, font, (0.05 * W, 0.53 * H, 0.12 * W, 0.53 * H + sh), color, rng)
        x0 = 0.15 * W
    top = float(rng.uniform(0.22, 0.3)) * H
    ch = float(rng.uniform(0.42, 0.52)) * H
    _draw_text(canvas, text, font, (x0, top, x1, top + ch), color, rng, emboss=rng.random() < 0.6)
    return canvas


def _render_paper(rng: np.random.Generator, state: str, text: str, font: str) -> np.ndarray:
    W, H = US_SIZE
    paper = np.array([rng.uniform(225, 252), rng.uniform(222, 250), rng.uniform(205, 245)])
    canvas = np.empty((H, W, 3), np.uint8)
    canvas[:] = paper.astype(np.uint8)
    canvas = np.clip(canvas + rng.normal(0, 3, canvas.shape), 0, 255).astype(np.uint8)
    cv2.rectangle(canvas, (4, 4), (W - 5, H - 5), (40, 40, 40), 2)
    ink = (10, 10, 10) if rng.random() < 0.8 else (120, 20, 20)
    header = ("TEMPORARY", "TEMP TAG", "TEMPORARY PERMIT", f"{state.upper()} TEMPORARY TAG")
    _draw_text(
        canvas,
        header[int(rng.integers(len(header)))],
        font,
        (0.1 * W, 0.07 * H, 0.9 * W, 0.2 * H),
        ink,
        rng,
    )
    _draw_text(canvas, text, font, (0.06 * W, 0.3 * H, 0.94 * W, 0.72 * H), ink, rng)
    exp = f"EXPIRES {int(rng.integers(1, 13)):02d}/{int(rng.integers(1, 29)):02d}/2026"
    _draw_text(canvas, exp, font, (0.2 * W, 0.8 * H, 0.8 * W, 0.9 * H), ink, rng)
    return canvas


def _eu_band(canvas: np.ndarray, country: str, font: str, band_w: int, rng: np.random.Generator):
    H = canvas.shape[0]
    canvas[:, :band_w] = (0, 51, 153)
    cx, cy, r = band_w // 2, int(H * 0.3), max(3, int(min(band_w, H) * 0.28))
    for k in range(12):
        ang = 2 * np.pi * k / 12
        cv2.circle(
            canvas, (int(cx + r * np.cos(ang)), int(cy + r * np.sin(ang))), 1, (255, 204, 0), -1
        )
    code = {
        "de": "D",
        "fr": "F",
        "it": "I",
        "es": "E",
        "nl": "NL",
        "be": "B",
        "pl": "PL",
        "at": "A",
        "cz": "CZ",
        "pt": "P",
        "se": "S",
        "gb": "UK",
    }[country]
    _draw_text(canvas, code, font, (2, H * 0.6, band_w - 2, H * 0.88), (255, 255, 255), rng)


def _render_eu(rng, country: str, display: str, font: str, rows: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    W, H = EU1_SIZE if rows == 1 else EU2_SIZE
    yellow = country in ("nl", "gb") and rng.random() < 0.6
    bg = (250, 205, 20) if yellow else (245, 245, 242)
    canvas = np.empty((H, W, 3), np.uint8)
    canvas[:] = bg
    cv2.rectangle(canvas, (1, 1), (W - 2, H - 2), (20, 20, 20), 2)
    band_w = int(0.085 * W) if rows == 1 else int(0.12 * W)
    _eu_band(canvas, country, font, band_w, rng)
    x0, x1 = band_w + 0.03 * W, 0.97 * W
    if rows == 1:
        _draw_text(canvas, display, font, (x0, 0.14 * H, x1, 0.86 * H), (10, 10, 10), rng)
    else:
        a, b = formats.split_rows(display)
        _draw_text(canvas, a, font, (x0, 0.08 * H, x1, 0.46 * H), (10, 10, 10), rng)
        _draw_text(canvas, b, font, (x0, 0.54 * H, x1, 0.92 * H), (10, 10, 10), rng)
    return canvas


def _render_br(rng, style: str, display: str, font: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    if style in ("grey", "grey2"):
        two = style == "grey2"
        W, H = BR2_SIZE if two else BR_SIZE
        red = rng.random() < 0.3  # commercial plates: red with white letters
        bg = (150, 25, 30) if red else tuple(int(v) for v in rng.uniform(170, 215, 3))
        ink = (235, 235, 235) if red else (25, 25, 25)
        canvas = np.empty((H, W, 3), np.uint8)
        canvas[:] = bg
        cv2.rectangle(canvas, (2, 2), (W - 3, H - 3), ink, 2)
        city = ("SP - SAO PAULO", "RJ - RIO DE JANEIRO", "MG - BELO HORIZONTE", "PR - CURITIBA")
        _draw_text(
            canvas,
            city[int(rng.integers(len(city)))],
            font,
            (0.25 * W, 0.06 * H, 0.75 * W, 0.2 * H),
            ink,
            rng,
        )
        if two:  # letters over digits (ABC / 1234)
            canon = formats.canonical(display)
            a, b = canon[:3], canon[3:]
            _draw_text(canvas, a, font, (0.12 * W, 0.24 * H, 0.88 * W, 0.58 * H), ink, rng)
            _draw_text(canvas, b, font, (0.06 * W, 0.62 * H, 0.94 * W, 0.94 * H), ink, rng)
        else:
            _draw_text(canvas, display, font, (0.05 * W, 0.27 * H, 0.95 * W, 0.92 * H), ink, rng)
        return canvas
    two = style == "mercosur2"
    W, H = BR2_SIZE if two else BR_SIZE
    canvas = np.empty((H, W, 3), np.uint8)
    canvas[:] = (246, 246, 244)
    band_h = int(0.22 * H) if not two else int(0.18 * H)
    canvas[:band_h] = (0, 56, 168)
    cv2.rectangle(canvas, (1, 1), (W - 2, H - 2), (20, 20, 20), 2)
    _draw_text(
        canvas,
        "BRASIL",
        font,
        (0.35 * W, 0.2 * band_h, 0.65 * W, 0.85 * band_h),
        (255, 255, 255),
        rng,
    )
    fx = int(0.86 * W)
    cv2.rectangle(
        canvas, (fx, int(0.2 * band_h)), (fx + int(0.08 * W), int(0.8 * band_h)), (0, 150, 60), -1
    )
    inks = [(15, 15, 15)] * 6 + [(170, 20, 20), (20, 90, 40), (20, 40, 150)]
    ink = inks[int(rng.integers(len(inks)))]
    if two:
        a, b = display[:3], display[3:]
        _draw_text(canvas, a, font, (0.1 * W, band_h + 0.06 * H, 0.9 * W, 0.55 * H), ink, rng)
        _draw_text(canvas, b, font, (0.1 * W, 0.6 * H, 0.9 * W, 0.94 * H), ink, rng)
    else:
        _draw_text(
            canvas, display, font, (0.05 * W, band_h + 0.1 * H, 0.95 * W, 0.92 * H), ink, rng
        )
    return canvas


def _choose(rng: np.random.Generator, region: str | None, style: str | None) -> tuple[str, str]:
    """Resolve (region, style), drawing whatever was not given."""
    if style is not None and style not in STYLES:
        raise ValueError(f"unknown style {style!r}; one of {STYLES}")
    if region is None:
        if style in ("us", "paper"):
            family = "us"
        elif style in ("eu1", "eu2"):
            family = "eu"
        elif style is not None:
            family = "br"
        else:
            family = str(rng.choice(["us", "eu", "br"], p=[0.6, 0.15, 0.25]))
        region = family
    region = region.lower()
    family = region.split("-", 1)[0]
    if family not in _STYLE_BY_REGION or (family == "br" and region != "br"):
        raise ValueError(f"unknown region {region!r}: use us-xx, eu-xx or br")
    if family == "us":
        state = region[3:] if "-" in region else formats.US_STATES[int(rng.integers(51))]
        if state not in formats.US_STATES:
            raise ValueError(f"unknown US state in region {region!r}")
        region = f"us-{state}"
    elif family == "eu":
        c = region[3:] if "-" in region else formats.EU_COUNTRIES[int(rng.integers(12))]
        if c not in formats.EU_COUNTRIES:
            raise ValueError(f"unknown EU country in region {region!r}")
        region = f"eu-{c}"
    if style is None:
        weights = {"us": [0.9, 0.1], "eu": [0.7, 0.3], "br": [0.5, 0.15, 0.35, 0.0]}[family]
        style = str(rng.choice(_STYLE_BY_REGION[family], p=weights))
    elif style not in _STYLE_BY_REGION[family]:
        raise ValueError(f"style {style!r} does not fit region {region!r}")
    return region, style


def render_plate(
    rng: np.random.Generator,
    region: str | None = None,
    text: str | None = None,
    style: str | None = None,
    *,
    split: str = "train",
    font: str | None = None,
) -> SynthPlate:
    """Render one clean frontal plate.

    ``region``: ``us-ca`` style state code, ``us`` (any state), ``eu-de`` / ``eu`` or ``br``;
    ``None`` draws one. ``text``: printed text (spaces/dashes allowed, they are not read);
    ``None`` draws one in the region's format. ``style``: one of :data:`STYLES`. ``split``:
    ``"train"`` uses the training fonts, ``"test"`` only the held-out font. ``font``: draw in
    this font file (of the data's ``fonts/``) instead of one picked for ``split``: real Mercosur
    plates are lettered in FE-Schrift (:data:`MERCOSUR_FONT`), none of the generic faces.
    """
    if font is None:
        font = _pick_font(rng, split)
    else:
        font_path(font)  # a missing file is named now, not at the first glyph
    region, style = _choose(rng, region, style)
    state = region[3:]
    rows = 2 if style in TWO_ROW_STYLES else 1
    if style == "us":
        display = text if text is not None else formats.us_text(rng, state)
        image = _render_us(rng, state, display, font)
    elif style == "paper":
        display = text if text is not None else formats.paper_text(rng)
        image = _render_paper(rng, state, display, font)
    elif style in ("eu1", "eu2"):
        display = text if text is not None else formats.eu_text(rng, state)
        image = _render_eu(rng, state, display, font, rows)
    else:
        display = (
            text
            if text is not None
            else formats.br_text(rng, "grey" if style in ("grey", "grey2") else "mercosur")
        )
        image = _render_br(rng, style, display, font)
    canon = formats.canonical(display)
    if not canon:
        raise ValueError(f"text {text!r} has no A-Z0-9 characters")
    return SynthPlate(
        image=image,
        text=canon,
        region=region,
        rows=rows,
        plate_class="paper" if style == "paper" else "full",
        style=style,
        font=font,
    )
