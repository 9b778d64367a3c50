"""Pure OCR pre/post-processing: preprocess, top-N beam, decode and partial marking."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from inference.errors import FrameError, ModelError
from inference.ocr import OcrLabels, decode, preprocess, top_n_sequences

ALPHA = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_"
LABELS = OcrLabels(ALPHA, "_", 10, ("us-ca", "eu", "br"), ("full", "paper"))
PAD = ALPHA.index("_")


def slots_for(text: str, p: float = 0.98, slots: int = 10) -> np.ndarray:
    """Slot probabilities that read ``text`` with probability ``p`` per slot."""
    probs = np.full((slots, len(ALPHA)), (1 - p) / (len(ALPHA) - 1), np.float32)
    for i in range(slots):
        c = ALPHA.index(text[i]) if i < len(text) else PAD
        probs[i, c] = p
    return probs


def test_decode_clean_read() -> None:
    r = decode(slots_for("7ABC123"), LABELS)
    assert r.text == "7ABC123"
    assert len(r.char_confidences) == 7
    assert all(abs(c - 0.98) < 1e-6 for c in r.char_confidences)
    assert abs(r.confidence - 0.98**10) < 1e-6  # pads are part of the read
    assert r.candidates[0].text == "7ABC123"
    assert r.plate_class == "full"


def test_low_confidence_position_is_marked_partial() -> None:
    probs = slots_for("7ABC123")
    probs[3] = 0.0
    probs[3, ALPHA.index("C")] = 0.4
    probs[3, ALPHA.index("G")] = 0.35
    probs[3, ALPHA.index("0")] = 0.25
    r = decode(probs, LABELS, partial_threshold=0.5)
    assert r.text == "7AB?123"
    assert r.plate_class == "partial"
    assert [c.text for c in r.candidates[:3]] == ["7ABC123", "7ABG123", "7AB0123"]
    assert abs(r.char_confidences[3] - 0.4) < 1e-6
    assert decode(probs, LABELS, partial_threshold=0.3).text == "7ABC123"


def test_candidates_sorted_unique_and_capped() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(len(ALPHA), 0.3), size=10).astype(np.float32)
    r = decode(probs, LABELS, top_n=7)
    confs = [c.confidence for c in r.candidates]
    assert confs == sorted(confs, reverse=True)
    assert len({c.text for c in r.candidates}) == len(r.candidates) <= 7
    assert "_" not in "".join(c.text for c in r.candidates)


def _brute_force(probs: np.ndarray, n: int) -> list[float]:
    """Every left-aligned sequence over a tiny alphabet, scored exactly."""
    slots, k = probs.shape
    scores = []
    for seq in itertools.product(range(k), repeat=slots):
        if any(seq[i] == PAD_SMALL and seq[i + 1] != PAD_SMALL for i in range(slots - 1)):
            continue
        scores.append(float(np.sum(np.log([probs[i, c] for i, c in enumerate(seq)]))))
    return sorted(scores, reverse=True)[:n]


PAD_SMALL = 3


def test_beam_is_exact_top_n_on_small_alphabet() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        probs = rng.dirichlet(np.ones(4), size=4)
        got = [s for s, _ in top_n_sequences(probs, PAD_SMALL, 5)]
        np.testing.assert_allclose(got, _brute_force(probs, 5), rtol=1e-9)


def test_beam_never_puts_a_character_after_pad() -> None:
    probs = slots_for("AB")
    probs[2, PAD] = 0.5
    probs[2, ALPHA.index("C")] = 0.49
    probs[3, ALPHA.index("D")] = 0.9  # would be read after a pad by a naive argmax
    probs[3, PAD] = 0.05
    for _, seq in top_n_sequences(probs, PAD, 10):
        first_pad = seq.index(PAD) if PAD in seq else len(seq)
        assert all(c == PAD for c in seq[first_pad:])


def test_region_and_plate_class_heads() -> None:
    r = decode(
        slots_for("ABC1D23"),
        LABELS,
        region_probs=np.array([0.1, 0.2, 0.7]),
        class_probs=np.array([0.2, 0.8]),
    )
    assert r.region == "br" and abs(r.region_confidence - 0.7) < 1e-6
    assert r.plate_class == "paper"


def test_empty_read() -> None:
    r = decode(slots_for(""), LABELS)
    assert r.text == "" and r.char_confidences == () and r.candidates[:1] != ("",)


def test_preprocess_shapes_and_range() -> None:
    crop = np.zeros((40, 120, 3), np.uint8)
    crop[:, 60:] = 255
    x = preprocess(crop, 64, 160)
    assert x.shape == (1, 64, 160, 1) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    assert preprocess(np.full((300, 900), 128, np.uint8), 64, 160).shape == (1, 64, 160, 1)


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
        preprocess(bad, 64, 160)


def test_labels_from_manifest_validation() -> None:
    good = {
        "alphabet": ALPHA,
        "pad": "_",
        "slots": 10,
        "regions": ["br"],
        "plate_classes": ["full"],
    }
    assert OcrLabels.from_manifest(good, "m").pad_index == PAD
    with pytest.raises(ModelError):
        OcrLabels.from_manifest({**good, "pad": "#"}, "m")
    with pytest.raises(ModelError):
        OcrLabels.from_manifest({k: v for k, v in good.items() if k != "slots"}, "m")


def test_settings_ranges() -> None:
    from inference.ocr import OcrSettings

    assert OcrSettings().top_n == 10
    for kwargs in ({"threads": 0}, {"top_n": 0}, {"top_n": 51}, {"partial_threshold": 1.5}):
        with pytest.raises(ValueError):
            OcrSettings(**kwargs)  # type: ignore[arg-type]
