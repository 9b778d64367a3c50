"""Reading a plate again under a format: the CTC searches behind it, the Mercosur band, and the
engine's Mercosur rule."""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import replace

import numpy as np
import pytest

from inference.ctc import best_in_format, format_probability, text_probability
from inference.engine import MERCOSUR_PLACES, MERCOSUR_REGION, apply_country, as_mercosur
from inference.ocr import OcrLabels, decode, in_format, region_and_design
from inference.plate_design import blue_band, shows_mercosur_band
from tests.test_ocr_decode import ALPHA, collapse, steps_for

LABELS = OcrLabels(ALPHA, "_", ("us", "eu", "br", MERCOSUR_REGION))


def _alignments(probs: np.ndarray) -> tuple[dict, dict]:
    """Every alignment of a tiny problem: per collapsed text, the summed and the best one."""
    total: dict[tuple[int, ...], float] = defaultdict(float)
    best: dict[tuple[int, ...], float] = defaultdict(float)
    for path in itertools.product(range(probs.shape[1]), repeat=probs.shape[0]):
        p = float(np.prod([probs[t, c] for t, c in enumerate(path)]))
        total[collapse(path)] += p
        best[collapse(path)] = max(best[collapse(path)], p)
    return total, best


def test_format_searches_are_exact_on_small_problems() -> None:
    rng = np.random.default_rng(5)
    for _ in range(40):
        steps, classes = int(rng.integers(1, 6)), int(rng.integers(2, 5))
        probs = rng.dirichlet(np.ones(classes) * 0.5, size=steps)
        total, best = _alignments(probs)
        for text, p in total.items():
            assert text_probability(probs, text) == pytest.approx(p, rel=1e-9, abs=1e-15)
        n = int(rng.integers(1, 4))
        allowed = [
            list(rng.choice(range(1, classes), size=int(rng.integers(1, classes)), replace=False))
            for _ in range(n)
        ]
        fit = [t for t in total if len(t) == n and all(t[i] in allowed[i] for i in range(n))]
        assert format_probability(probs, allowed) == pytest.approx(
            sum(total[t] for t in fit), rel=1e-9, abs=1e-15
        )
        found = best_in_format(probs, allowed)
        if not fit:
            assert found is None
            continue
        assert found is not None
        p, text = found
        assert best[text] == pytest.approx(max(best[t] for t in fit), rel=1e-12)
        assert p == pytest.approx(total[text], rel=1e-9)


def _mercosur_read(text: str = "FTQ8018", o_share: float = 1e-5) -> np.ndarray:
    """A Mercosur plate whose fifth-place O the reader took for a 0 at 0.99: the O is far
    below the beam's ten candidates, yet the likeliest letter there."""
    probs = steps_for(text, p=0.99)
    at = text.index("0", 4) * 3
    for t in (at, at + 1):
        letters = [ALPHA.index(ch) for ch in ALPHA if ch.isalpha()]
        probs[t, letters] = o_share / 100
        probs[t, ALPHA.index("O")] = o_share
    return probs


def _region(name: str, conf: float) -> np.ndarray:
    r = np.full(4, (1 - conf) / 3, np.float32)
    r[LABELS.regions.index(name)] = conf
    return r


def test_in_format_finds_the_letter_the_beam_never_kept() -> None:
    ocr = decode(_mercosur_read(), LABELS, top_n=10)
    assert ocr.text == "FTQ8018"
    assert "FTQ8O18" not in [c.text for c in ocr.candidates]
    found = in_format(ocr, MERCOSUR_PLACES)
    assert found is not None
    best, mass = found
    assert best.text == "FTQ8O18"
    assert 0 < best.confidence <= mass < ocr.confidence
    assert in_format(replace(ocr, steps=None), ["A"]) is None


def test_as_mercosur_reads_the_format_with_confidences_given_it() -> None:
    ocr = decode(_mercosur_read(), LABELS, top_n=10)
    out = as_mercosur(ocr)
    assert out is not None
    assert out.text == "FTQ8O18" and out.plate_class == "full"
    found = in_format(ocr, MERCOSUR_PLACES)
    assert found is not None
    best, mass = found
    assert out.confidence == pytest.approx(best.confidence / mass)  # given the format
    assert out.confidence > 1000 * best.confidence
    assert out.char_confidences[:4] == ocr.char_confidences[:4]  # the unchanged ones keep theirs
    assert out.char_confidences[4] == out.confidence
    assert all(c.text[4].isalpha() for c in out.candidates)
    assert out.region == MERCOSUR_REGION and out.region_confidence == ocr.design_confidence


def test_the_mercosur_rule_needs_brazil_the_head_and_the_band() -> None:
    probs = _mercosur_read()
    sure = decode(probs, LABELS, region_probs=_region(MERCOSUR_REGION, 0.97))
    assert apply_country(sure, "auto", mercosur_band=True).text == "FTQ8O18"
    assert apply_country(sure, "br", mercosur_band=True).text == "FTQ8O18"
    # no band seen (a grey or IR picture): Brazil's two formats, the read as it was
    assert apply_country(sure, "auto", mercosur_band=False).text == "FTQ8018"
    fair = decode(probs, LABELS, region_probs=_region(MERCOSUR_REGION, 0.85))
    assert apply_country(fair, "auto", mercosur_band=True).text == "FTQ8O18"  # head and band
    unsure = decode(probs, LABELS, region_probs=_region(MERCOSUR_REGION, 0.6))
    assert apply_country(unsure, "auto", mercosur_band=True).text == "FTQ8018"
    grey = decode(probs, LABELS, region_probs=_region("br", 0.99))
    assert apply_country(grey, "auto", mercosur_band=True).text == "FTQ8018"
    us = decode(probs, LABELS, region_probs=_region("us", 0.99))
    assert apply_country(us, "auto", mercosur_band=True).text == "FTQ8018"
    # a read far longer than a plate (a line of blue lettering) is not forced into seven places
    long = decode(steps_for("METROPOLIT", p=0.99), LABELS,
                  region_probs=_region(MERCOSUR_REGION, 0.97))
    assert apply_country(long, "auto", mercosur_band=True).text == "METROPOLIT"
    # a unit configured for another country never reads the Mercosur format
    assert apply_country(sure, "us", mercosur_band=True).text == "FTQ8018"


def test_a_design_class_leaves_the_region_as_the_old_head_gave_it() -> None:
    logits = np.array([2.0, 0.5, -1.0])
    old = np.exp(logits) / np.exp(logits).sum()
    for design_logit in (-5.0, 1.0, 4.0):
        full = np.exp(np.append(logits, design_logit))
        full /= full.sum()
        region, conf, design, design_conf = region_and_design(full, LABELS.regions)
        assert region == "us" and conf == pytest.approx(old[0])
        assert design == MERCOSUR_REGION and design_conf == pytest.approx(full[3])
    assert region_and_design(old, ("us", "eu", "br")) == ("us", pytest.approx(old[0]), None, 0.0)
    assert region_and_design(None, LABELS.regions) == (None, 0.0, None, 0.0)


def _plate(band: tuple[int, int, int] | None, h: int = 40, w: int = 130) -> np.ndarray:
    """A white plate with dark letters, on a grey bumper margin, with a band on top."""
    img = np.full((h, w, 3), 90, np.uint8)
    top, bottom = 4, h - 4
    img[top:bottom, 6 : w - 6] = 235
    if band is not None:
        img[top : top + (bottom - top) // 4, 6 : w - 6] = band
    img[top + 14 : bottom - 4, 20 : w - 20 : 12] = 20  # strokes
    return img


def test_the_blue_band_is_seen_and_nothing_else_is() -> None:
    assert shows_mercosur_band(_plate((25, 60, 160)))  # Mercosur blue
    assert not shows_mercosur_band(_plate(None))  # grey plate
    assert not shows_mercosur_band(_plate((160, 30, 30)))  # a red banner
    grey = _plate((25, 60, 160)).mean(axis=2).astype(np.uint8)
    assert blue_band(grey) == 0.0  # IR night: no colour, no design
    night = np.repeat(grey[:, :, None], 3, axis=2)
    assert not shows_mercosur_band(night)
    low = _plate(None)
    low[-10:, :] = (25, 60, 160)  # blue below the plate, not above its letters
    assert not shows_mercosur_band(low)
