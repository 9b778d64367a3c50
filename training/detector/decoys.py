"""Blocks of lettering that are not plates, pasted unlabelled beside the synthetic plates.

Two-row plates pasted alone taught the detector that any square block of text is a plate: the
fourteenth session's two-row run found logos and signs on the dev scenes (a three-letter logo
116x87 px, ``EEE``, ``RM1X``). A decoy is what such a false plate was: a short word or a few
letters in a badge or on a van, a sign of two to four lines of words in mixed sizes and cases,
a round emblem. What it lacks, and a plate has, is a registration's layout: one or two rows of
even, same-size characters inside a plate's outline. Decoys are grey like the detector's input.
"""

from __future__ import annotations

import cv2
import numpy as np

from training.synth.render import text_mask

# No plate font (GL-Nummernschild) and not the reader's held-out face.
FONTS = (
    "BarlowCondensed-Bold.ttf",
    "BarlowCondensed-Medium.ttf",
    "Overpass-ExtraBold.ttf",
    "Overpass-SemiBold.ttf",
    "LiberationSans-Bold.ttf",
    "RobotoCondensed-Bold.ttf",
    "OSP-DIN.ttf",
)
WORDS = (
    "STOP", "TAXI", "BUS", "SALE", "OPEN", "EXIT", "PARKING", "HOTEL", "BANK", "CAFE", "PIZZA",
    "POLICE", "SCHOOL", "ONE WAY", "DELIVERY", "EXPRESS", "SERVICE", "AUTO", "GARAGE", "FOOD",
    "MARKET", "PHARMACY", "DIESEL", "TIRES", "WASH", "RENT", "FRESH", "BAKERY", "MOVING",
    "PLUMBING", "ELECTRIC", "LOGISTICS", "CARGO", "FREIGHT", "TRANSPORT", "AMBULANCE", "FIRE",
    "Free", "Call now", "Since 1998", "Quality", "Fast", "Home", "Repairs", "Solutions", "City",
    "Centre", "Station", "Airport", "Toll", "Lane", "Only", "Kids", "Pets", "Farm", "Motors",
    "www.example.com", "24h", "Tel.", "Bio", "Eco", "Group", "& Sons", "Ltd", "Inc.",
)
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
KINDS = ("logo", "sign", "emblem", "lettering")
KIND_WEIGHTS = (0.35, 0.3, 0.15, 0.2)
# A logo or emblem stays squarish; a sign or lettering may be one line of words, as wide as a
# shop's name over its door (the first decoy run still took "RESTAURANT" for a plate).
MAX_ASPECT = {"logo": 2.2, "emblem": 2.2, "sign": 4.5, "lettering": 4.5}


def _lines(rng: np.random.Generator, kind: str) -> list[str]:
    if kind in ("logo", "emblem"):
        n = int(rng.integers(1, 4 if kind == "emblem" else 5))
        return ["".join(rng.choice(list(LETTERS), n))]
    words = [str(w) for w in rng.choice(WORDS, int(rng.integers(1, 5)))]
    if rng.random() < 0.3:
        words = [w.lower() for w in words]
    return words


def _stack(masks: list[np.ndarray], heights: list[int], gap: float) -> np.ndarray:
    """Lines centred one under another, each scaled to its height."""
    scaled = [
        cv2.resize(m, (max(1, round(m.shape[1] * h / m.shape[0])), h), interpolation=cv2.INTER_AREA)
        for m, h in zip(masks, heights, strict=True)
    ]
    width = max(s.shape[1] for s in scaled)
    g = round(gap * heights[0])
    out = np.zeros((sum(heights) + g * (len(scaled) - 1), width), np.float32)
    y = 0
    for s in scaled:
        x = (width - s.shape[1]) // 2
        out[y : y + s.shape[0], x : x + s.shape[1]] = s
        y += s.shape[0] + g
    return out


def render_decoy(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A grey decoy (uint8) and its alpha (float32 0..1), at most ``MAX_ASPECT`` wide."""
    for _ in range(20):
        kind = str(rng.choice(KINDS, p=KIND_WEIGHTS))
        font = str(rng.choice(FONTS))
        lines = _lines(rng, kind)
        masks = [text_mask(t, font, 64) for t in lines]
        h0 = 48
        heights = [h0] + [round(h0 * rng.uniform(0.35, 1.0)) for _ in masks[1:]]
        if kind == "logo":  # tall, squeezed display lettering
            masks = [cv2.resize(masks[0], (masks[0].shape[1], round(masks[0].shape[0]
                                                                    * rng.uniform(1.0, 1.8))))]
        text = _stack(masks, heights, float(rng.uniform(0.15, 0.45)))
        pad = round(h0 * rng.uniform(0.15, 0.6))
        text = cv2.copyMakeBorder(text, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        h, w = text.shape
        if w / h <= MAX_ASPECT[kind]:
            break
    fg = float(rng.uniform(0, 255))
    d = float(rng.uniform(80, 200))
    bg = fg + d if fg + d <= 255 or fg - d < 0 else fg - d
    if kind == "lettering":  # painted straight on a van or a wall: no panel
        alpha = cv2.dilate(text, np.ones((3, 3), np.uint8))
    elif kind == "emblem":
        alpha = np.zeros((h, w), np.float32)
        cv2.ellipse(alpha, (w // 2, h // 2), (w // 2, h // 2), 0, 0, 360, 1.0, -1)
        cv2.ellipse(text, (w // 2, h // 2), (w // 2 - 3, h // 2 - 3), 0, 0, 360, 1.0,
                    max(1, h // 25))
    else:
        alpha = np.ones((h, w), np.float32)
        if rng.random() < 0.4:  # a sign's frame
            t = max(1, round(h * rng.uniform(0.02, 0.05)))
            cv2.rectangle(text, (t, t), (w - 1 - t, h - 1 - t), 1.0, t)
    img = bg * (1 - text) + fg * text
    return np.clip(img, 0, 255).astype(np.uint8), np.clip(alpha, 0, 1).astype(np.float32)
