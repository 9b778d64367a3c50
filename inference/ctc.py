"""CTC decoding of a recognizer's per-step class probabilities. Pure: numpy in, texts out.

The recognizer emits, for each of T horizontal steps, a softmax over blank + the alphabet. A text
is every alignment that collapses to it (repeats merged, blanks dropped), so its probability is a
sum over alignments: :func:`prefix_beam_search` keeps the ``beam`` most probable prefixes with
their blank- and non-blank-ending masses (the standard CTC prefix beam search) and returns texts
with real probabilities, which is what the per-pass vote and the hotlist alerts weigh.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

# Classes below this probability at a step are not extended there: with a peaked recognizer this
# keeps the search to a few symbols per step without changing the top texts measurably.
PRUNE_P = 1e-3


def best_path(probs: np.ndarray, blank: int = 0) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Greedy decode: the collapsed arg-max path and, per emitted symbol, its highest
    probability over the steps it spans."""
    if probs.ndim != 2:
        raise ValueError(f"probs must be (steps, classes), got {probs.shape}")
    idx = probs.argmax(axis=1)
    syms: list[int] = []
    confs: list[float] = []
    prev = blank
    for t, c in enumerate(idx):
        c = int(c)
        if c != blank and c != prev:
            syms.append(c)
            confs.append(float(probs[t, c]))
        elif c != blank and c == prev:
            confs[-1] = max(confs[-1], float(probs[t, c]))
        prev = c
    return tuple(syms), tuple(confs)


def prefix_beam_search(
    probs: np.ndarray, blank: int = 0, beam: int = 10
) -> list[tuple[float, tuple[int, ...]]]:
    """The ``beam`` most probable collapsed texts as (probability, symbols), best first."""
    if probs.ndim != 2:
        raise ValueError(f"probs must be (steps, classes), got {probs.shape}")
    if beam < 1:
        raise ValueError("beam must be >= 1")
    p = probs.astype(np.float64)
    # prefix -> (mass ending in blank, mass ending in its last symbol)
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (1.0, 0.0)}
    for t in range(p.shape[0]):
        row = p[t]
        cands = [int(c) for c in np.flatnonzero(row >= PRUNE_P) if c != blank]
        nxt: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [0.0, 0.0])
        pb = float(row[blank])
        for prefix, (m_b, m_nb) in beams.items():
            total = m_b + m_nb
            e = nxt[prefix]
            e[0] += total * pb
            if prefix:
                e[1] += m_nb * float(row[prefix[-1]])  # a repeat without blank stays merged
            for c in cands:
                pc = float(row[c])
                ext = nxt[(*prefix, c)]
                if prefix and prefix[-1] == c:
                    ext[1] += m_b * pc  # a doubled letter needs a blank between
                else:
                    ext[1] += total * pc
        ranked = sorted(nxt.items(), key=lambda kv: -(kv[1][0] + kv[1][1]))[:beam]
        beams = {k: (v[0], v[1]) for k, v in ranked}
    out = [(m_b + m_nb, prefix) for prefix, (m_b, m_nb) in beams.items()]
    out.sort(key=lambda x: -x[0])
    return out
