"""CTC decoding of a recognizer's per-step class probabilities. Pure: numpy in, texts out.

The recognizer emits, for each of T horizontal steps, a softmax over blank + the alphabet. A text
is every alignment that collapses to it (repeats merged, blanks dropped), so its probability is a
sum over alignments: :func:`prefix_beam_search` keeps the ``beam`` most probable prefixes with
their blank- and non-blank-ending masses (the standard CTC prefix beam search) and returns texts
with real probabilities, which is what the per-pass vote and the hotlist alerts weigh.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    """The ``beam`` most probable collapsed texts as (probability, symbols), best first.

    Each step's extensions are one outer product over (beam, classes kept at that step); only
    the ``beam`` kept prefixes are built as tuples. The dict-of-prefixes loop this replaced
    spent 2.4 ms a read here in Python, as long as a fifth of the recognizer itself.
    """
    if probs.ndim != 2:
        raise ValueError(f"probs must be (steps, classes), got {probs.shape}")
    if beam < 1:
        raise ValueError("beam must be >= 1")
    p = probs.astype(np.float64)
    prefixes: list[tuple[int, ...]] = [()]
    m_b = np.ones(1)  # mass of alignments of each prefix ending in blank
    m_nb = np.zeros(1)  # ... ending in its last symbol
    last = np.full(1, -1)  # each prefix's last symbol, -1 for the empty one
    for t in range(p.shape[0]):
        row = p[t]
        keep = row >= PRUNE_P
        keep[blank] = False
        cands = np.flatnonzero(keep)
        total = m_b + m_nb
        stay_b = total * row[blank]
        # a repeat without blank stays merged into the same prefix
        stay_nb = np.where(last >= 0, m_nb * row[np.maximum(last, 0)], 0.0)
        # a doubled letter needs a blank between, so only blank-ending mass extends by it
        ext = np.where(last[:, None] == cands[None, :], m_b[:, None], total[:, None])
        ext = ext * row[cands][None, :]
        # an extension that is itself a kept prefix adds to that prefix's entry
        index = {q: i for i, q in enumerate(prefixes)}
        for j, q in enumerate(prefixes):
            parent = index.get(q[:-1]) if q else None
            if parent is not None:
                k = int(np.searchsorted(cands, q[-1]))
                if k < cands.size and cands[k] == q[-1]:
                    stay_nb[j] += ext[parent, k]
                    ext[parent, k] = -1.0  # merged: not a candidate of its own
        n = len(prefixes)
        totals = np.concatenate((stay_b + stay_nb, ext.ravel()))
        order = np.argsort(-totals, kind="stable")[:beam]
        order = order[totals[order] >= 0.0]
        nxt: list[tuple[int, ...]] = []
        n_b = np.zeros(order.size)
        n_nb = np.empty(order.size)
        n_last = np.empty(order.size, np.int64)
        for i, o in enumerate(order.tolist()):
            if o < n:
                nxt.append(prefixes[o])
                n_b[i], n_nb[i], n_last[i] = stay_b[o], stay_nb[o], last[o]
            else:
                b, k = divmod(o - n, cands.size)
                c = int(cands[k])
                nxt.append((*prefixes[b], c))
                n_nb[i], n_last[i] = ext[b, k], c
        prefixes, m_b, m_nb, last = nxt, n_b, n_nb, n_last
    out = [(float(a + b), q) for q, a, b in zip(prefixes, m_b, m_nb, strict=True)]
    out.sort(key=lambda x: -x[0])
    return out


def _place_mask(allowed: Sequence[Sequence[int]], classes: int, blank: int) -> np.ndarray:
    """(places, classes) bool: which symbols each place of a format takes (never the blank)."""
    fits = np.zeros((len(allowed), classes), bool)
    for i, a in enumerate(allowed):
        fits[i, list(a)] = True
    fits[:, blank] = False
    return fits


def text_probability(probs: np.ndarray, symbols: tuple[int, ...], blank: int = 0) -> float:
    """The probability of the collapsed text ``symbols``: the sum over all its alignments (the
    CTC forward algorithm), comparable with :func:`prefix_beam_search`'s figures."""
    if probs.ndim != 2:
        raise ValueError(f"probs must be (steps, classes), got {probs.shape}")
    p = probs.astype(np.float64)
    ext = np.full(2 * len(symbols) + 1, blank, np.int64)
    ext[1::2] = symbols
    # a symbol may follow the one two places back directly unless they are the same symbol
    skip = np.zeros(ext.size, bool)
    skip[3::2] = ext[3::2] != ext[1:-2:2]
    alpha = np.zeros(ext.size)
    alpha[0] = p[0, blank]
    if ext.size > 1:
        alpha[1] = p[0, ext[1]]
    for t in range(1, p.shape[0]):
        nxt = alpha.copy()
        nxt[1:] += alpha[:-1]
        nxt[2:] += np.where(skip[2:], alpha[:-2], 0.0)
        alpha = nxt * p[t, ext]
    return float(alpha[-1] + (alpha[-2] if ext.size > 1 else 0.0))


def best_in_format(
    probs: np.ndarray, allowed: Sequence[Sequence[int]], blank: int = 0
) -> tuple[float, tuple[int, ...]] | None:
    """The likeliest text of exactly ``len(allowed)`` symbols whose i-th symbol is one of
    ``allowed[i]``, as (probability, symbols); None when no alignment fits.

    The text is the one of the single likeliest alignment that fits (a Viterbi search over
    the format's places); its probability is then the sum over all of its alignments
    (:func:`text_probability`). A prefix beam search finds a format's reading only when it is
    among the few likeliest texts; this finds it however unlikely the reader made it, which is
    what a place the format fixes (a letter where the reader saw a digit) needs.
    """
    if probs.ndim != 2:
        raise ValueError(f"probs must be (steps, classes), got {probs.shape}")
    steps, classes = probs.shape
    n = len(allowed)
    if n == 0 or n > steps:
        return None
    lp = np.log(np.maximum(probs.astype(np.float64), 1e-300))
    fits = _place_mask(allowed, classes, blank)
    neg = -np.inf
    at_blank = np.full(n + 1, neg)  # best score ending in a blank after k symbols
    at_blank[0] = 0.0
    at_sym = np.full((n, classes), neg)  # ... ending in symbol c as the (i+1)-th symbol
    came_b = np.zeros((steps, n + 1), bool)  # blank state entered from a symbol (else stayed)
    came_b_sym = np.zeros((steps, n + 1), np.int64)
    came_s = np.zeros((steps, n, classes), np.int8)  # 0 stayed, 1 from a blank, 2 from a symbol
    came_s_sym = np.zeros((steps, n, classes), np.int64)
    cols = np.arange(classes)
    for t in range(steps):
        row = lp[t]
        best_sym, arg_sym = at_sym.max(axis=1), at_sym.argmax(axis=1)
        from_sym = np.concatenate(([neg], best_sym))
        came_b[t] = from_sym > at_blank
        came_b_sym[t, 1:] = arg_sym
        new_blank = np.maximum(at_blank, from_sym) + row[blank]
        # entering place i from place i-1's symbol needs a different symbol (a repeat merges)
        prev = np.full((n, classes), neg)
        prev_sym = np.zeros((n, classes), np.int64)
        if n > 1:
            last = at_sym[:-1]
            top = last.argmax(axis=1)
            second = last.copy()
            second[np.arange(n - 1), top] = neg
            top2 = second.argmax(axis=1)
            is_top = cols[None, :] == top[:, None]
            prev[1:] = np.where(is_top, second.max(axis=1)[:, None], last.max(axis=1)[:, None])
            prev_sym[1:] = np.where(is_top, top2[:, None], top[:, None])
        ways = np.stack([at_sym, np.broadcast_to(at_blank[:-1, None], (n, classes)), prev])
        came_s[t] = ways.argmax(axis=0)
        came_s_sym[t] = prev_sym
        new_sym = ways.max(axis=0) + row[None, :]
        new_sym[~fits] = neg
        at_blank, at_sym = new_blank, new_sym
    end_sym = at_sym[n - 1]
    if max(at_blank[n], end_sym.max()) == neg:
        return None
    symbols = [0] * n
    in_blank, i, c = at_blank[n] >= end_sym.max(), n - 1, int(end_sym.argmax())
    k = n  # the blank state's symbol count
    for t in range(steps - 1, 0, -1):
        if in_blank:
            if came_b[t, k]:
                in_blank, i, c = False, k - 1, int(came_b_sym[t, k])
            continue
        symbols[i] = c
        how = came_s[t, i, c]
        if how == 1:
            in_blank, k = True, i
        elif how == 2:
            c = int(came_s_sym[t, i, c])
            i -= 1
    if not in_blank:
        symbols[i] = c
    out = tuple(symbols)
    return text_probability(probs, out, blank), out


def format_probability(
    probs: np.ndarray, allowed: Sequence[Sequence[int]], blank: int = 0
) -> float:
    """The probability that the text has exactly ``len(allowed)`` symbols, the i-th one of
    ``allowed[i]``: the sum over every text that fits (the CTC forward algorithm over the
    format's places), so that a fitting text's probability over it is its probability given
    the format."""
    if probs.ndim != 2:
        raise ValueError(f"probs must be (steps, classes), got {probs.shape}")
    steps, classes = probs.shape
    n = len(allowed)
    if n == 0 or n > steps:
        return 0.0
    p = probs.astype(np.float64)
    fits = _place_mask(allowed, classes, blank)
    at_blank = np.zeros(n + 1)
    at_blank[0] = 1.0
    at_sym = np.zeros((n, classes))
    for t in range(steps):
        row = p[t]
        sym_mass = at_sym.sum(axis=1)
        new_blank = (at_blank + np.concatenate(([0.0], sym_mass))) * row[blank]
        # entering place i from place i-1 needs a different symbol (a repeat merges)
        prev = np.zeros((n, classes))
        prev[1:] = sym_mass[:-1, None] - at_sym[:-1]
        new_sym = (at_sym + at_blank[:-1, None] + prev) * row[None, :]
        new_sym[~fits] = 0.0
        at_blank, at_sym = new_blank, new_sym
    return float(at_blank[n] + at_sym[n - 1].sum())
