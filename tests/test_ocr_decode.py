"""Pure OCR pre/post-processing: preprocess, CTC beam search, decode and partial marking."""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import pytest

from inference.ctc import best_path, prefix_beam_search
from inference.errors import FrameError, ModelError
from inference.ocr import OcrLabels, decode, preprocess, tempered

ALPHA = "_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LABELS = OcrLabels(ALPHA, "_", ("us", "eu", "br"))


def steps_for(text: str, p: float = 0.98, steps: int = 30) -> np.ndarray:
    """Per-step probabilities where each character holds two steps, blanks between and after."""
    probs = np.full((steps, len(ALPHA)), (1 - p) / (len(ALPHA) - 1), np.float32)
    path = []
    for ch in text:
        path += [ALPHA.index(ch)] * 2 + [0]
    path += [0] * (steps - len(path))
    for t, c in enumerate(path[:steps]):
        probs[t, c] = p
    return probs


def collapse(path: tuple[int, ...]) -> tuple[int, ...]:
    out: list[int] = []
    prev = 0
    for c in path:
        if c != 0 and c != prev:
            out.append(c)
        prev = c
    return tuple(out)


def _brute_force(probs: np.ndarray) -> dict[tuple[int, ...], float]:
    """Every alignment of a tiny problem, summed per collapsed text."""
    texts: dict[tuple[int, ...], float] = defaultdict(float)
    for path in itertools.product(range(probs.shape[1]), repeat=probs.shape[0]):
        texts[collapse(path)] += float(np.prod([probs[t, c] for t, c in enumerate(path)]))
    return texts


def test_beam_search_is_exact_on_a_small_problem() -> None:
    rng = np.random.default_rng(1)
    for _ in range(10):
        probs = rng.dirichlet(np.ones(3), size=5)
        exact = sorted(_brute_force(probs).items(), key=lambda kv: -kv[1])
        got = prefix_beam_search(probs, blank=0, beam=200)
        got_map = {seq: p for p, seq in got}
        for seq, p in exact[:5]:
            assert got_map[seq] == pytest.approx(p, rel=1e-9)
        assert sum(p for p, _ in got) == pytest.approx(1.0, rel=1e-9)


def test_doubled_letter_needs_a_blank() -> None:
    a = ALPHA.index("A")
    probs = np.zeros((3, len(ALPHA)))
    probs[:, a] = 1.0  # AAA collapses to one A
    assert prefix_beam_search(probs)[0][1] == (a,)
    probs[1] = 0.0
    probs[1, 0] = 1.0  # A _ A is two
    assert prefix_beam_search(probs)[0][1] == (a, a)
    assert best_path(probs)[0] == (a, a)


def test_decode_clean_read() -> None:
    r = decode(steps_for("7ABC123"), LABELS)
    assert r.text == "7ABC123"
    assert len(r.char_confidences) == 7
    assert all(abs(c - 0.98) < 1e-6 for c in r.char_confidences)
    assert 0.5 < r.confidence <= 1.0
    assert r.candidates[0].text == "7ABC123"
    assert r.plate_class == "full"


def test_low_confidence_character_is_marked_partial() -> None:
    probs = steps_for("7ABC123")
    probs[9] = 0.0  # "C" seen on one step only, blank on its second
    probs[9, ALPHA.index("C")] = 0.45
    probs[9, ALPHA.index("G")] = 0.35
    probs[9, ALPHA.index("0")] = 0.20
    probs[10] = 0.0
    probs[10, 0] = 1.0
    r = decode(probs, LABELS, partial_threshold=0.5)
    assert r.text == "7AB?123"
    assert r.plate_class == "partial"
    assert [c.text for c in r.candidates[:3]] == ["7ABC123", "7ABG123", "7AB0123"]
    assert decode(probs, LABELS, partial_threshold=0.3).text == "7ABC123"


def test_candidates_sorted_unique_and_capped() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(len(ALPHA), 0.3), size=30).astype(np.float32)
    r = decode(probs, LABELS, top_n=7)
    confs = [c.confidence for c in r.candidates]
    assert confs == sorted(confs, reverse=True)
    assert len({c.text for c in r.candidates}) == len(r.candidates) <= 7
    assert "_" not in "".join(c.text for c in r.candidates)


def test_region_head() -> None:
    r = decode(steps_for("ABC1D23"), LABELS, region_probs=np.array([0.1, 0.2, 0.7]))
    assert r.region == "br" and abs(r.region_confidence - 0.7) < 1e-6


def test_empty_read() -> None:
    r = decode(steps_for(""), LABELS)
    assert r.text == "" and r.char_confidences == () and r.confidence == 0.0


def test_preprocess_keeps_aspect_and_pads() -> None:
    crop = np.zeros((40, 80, 3), np.uint8)
    crop[:, :, 0] = 255  # red in RGB
    x = preprocess(crop, 48, 240)
    assert x.shape == (1, 48, 240, 3) and x.dtype == np.float32
    assert np.allclose(x[0, :, :96, 2], 1.0) and np.allclose(x[0, :, :96, 0], -1.0)  # BGR
    assert np.all(x[0, :, 96:] == 0.0)  # padding
    assert preprocess(np.full((30, 900), 128, np.uint8), 48, 240).shape == (1, 48, 240, 3)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10, 3), np.float32),
        np.zeros((10, 10, 4), np.uint8),
        np.zeros((1, 5, 3), np.uint8),
    ],
)
def test_preprocess_rejects_bad_crops(bad: np.ndarray) -> None:
    with pytest.raises(FrameError):
        preprocess(bad, 48, 240)


def test_labels_from_manifest_validation() -> None:
    good = {"decoder": "ctc", "alphabet": ALPHA, "blank": "_", "regions": ["br"]}
    assert OcrLabels.from_manifest(good, "m").blank_index == 0
    with pytest.raises(ModelError):
        OcrLabels.from_manifest({**good, "blank": "#"}, "m")
    with pytest.raises(ModelError):
        OcrLabels.from_manifest({**good, "decoder": "slots"}, "m")
    assert OcrLabels.from_manifest({**good, "temperature": 1.5}, "m").temperature == 1.5
    for bad in ("nan", 0.0, 50):
        with pytest.raises(ModelError):
            OcrLabels.from_manifest({**good, "temperature": bad}, "m")


def test_temperature_softens_confidence_without_changing_the_read() -> None:
    probs = steps_for("7ABC123", p=0.9)
    np.testing.assert_allclose(tempered(probs, 1.0), probs)
    assert np.allclose(tempered(probs, 2.0).sum(axis=1), 1.0, atol=1e-5)
    plain = decode(probs, LABELS)
    warm = decode(probs, OcrLabels(ALPHA, "_", ("us", "eu", "br"), temperature=2.0))
    assert warm.candidates[0].text == plain.text == "7ABC123"
    assert warm.confidence < plain.confidence


def test_settings_ranges() -> None:
    from inference.ocr import OcrSettings

    assert OcrSettings().top_n == 10
    for kwargs in ({"threads": 0}, {"top_n": 0}, {"top_n": 51}, {"partial_threshold": 1.5}):
        with pytest.raises(ValueError):
            OcrSettings(**kwargs)  # type: ignore[arg-type]
