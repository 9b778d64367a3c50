"""Metrics shared by export (float Keras model) and eval (int8 TFLite): pure numpy.

Test sets: ``real_us_test``, ``real_br_test`` (real crops, 20 % split by plate text, never
trained on), ``synth_test`` (held-out font and seeds), ``real_eu_test`` (region only).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from inference.ocr import top_n_sequences
from training.ocr.common import ALPHABET, PAD, PLATE_CLASSES, REGIONS, WORK

TEST_SETS = ("real_us_test", "real_br_test", "synth_test", "real_eu_test")
Predict = Callable[[np.ndarray], dict[str, np.ndarray]]


def load_test(name: str) -> dict[str, np.ndarray]:
    with np.load(WORK / f"{name}.npz") as z:
        return {k: z[k] for k in z.files}


def best_text(probs: np.ndarray) -> str:
    pad = ALPHABET.index(PAD)
    _, seq = top_n_sequences(probs, pad, 1)[0]
    return "".join(ALPHABET[c] for c in seq if c != pad)


def truth_text(row: np.ndarray) -> str:
    return "".join(ALPHABET[int(c)] for c in row if ALPHABET[int(c)] != PAD)


def levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def set_metrics(pred: dict[str, np.ndarray], data: dict[str, np.ndarray]) -> dict[str, float]:
    n = len(data["x"])
    out: dict[str, float] = {"count": n}
    region_pred = pred["region"].argmax(-1)
    out["region_accuracy"] = round(float((region_pred == data["region"]).mean()), 4)
    if "plate_class" in pred and len(set(data["plate_class"].tolist())) > 1:
        cls = pred["plate_class"].argmax(-1)
        out["plate_class_accuracy"] = round(float((cls == data["plate_class"]).mean()), 4)
    has_text = data["char_weight"] > 0
    if has_text.any():
        texts = [best_text(pred["chars"][i]) for i in range(n)]
        truths = [truth_text(data["text"][i]) for i in range(n)]
        idx = np.nonzero(has_text)[0]
        exact = sum(texts[i] == truths[i] for i in idx)
        errs = sum(levenshtein(texts[i], truths[i]) for i in idx)
        chars = sum(len(truths[i]) for i in idx)
        out["exact"] = round(exact / len(idx), 4)
        out["cer"] = round(errs / max(chars, 1), 4)
        out["count"] = int(len(idx))
    return out


def evaluate_sets(predict: Predict) -> dict[str, dict[str, float]]:
    result: dict[str, dict[str, float]] = {}
    for name in TEST_SETS:
        data = load_test(name)
        result[name] = set_metrics(predict(data["x"]), data)
    return result


def region_labels() -> tuple[str, ...]:
    return REGIONS


def class_labels() -> tuple[str, ...]:
    return PLATE_CLASSES
