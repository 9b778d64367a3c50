"""`vigil bench hotlist`: a 1,000,000-entry hotlist, from signed file to match latency.

Figures: time to sign (agency side, for reference), verify + parse + build the index from the
signed bytes (what a device does at start and on every full update), resident memory the
compiled matcher adds, and per-read match latency for an exact hit, a miss, a confusion hit,
and partial reads with one and two unknown characters. ``quick`` uses 100,000 entries.
"""

from __future__ import annotations

import gc
import json
import random
import statistics
import sys
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.link.hotlists import apply_document, sign_hotlist, verify_signed
from inference.hotlist_matcher import HotlistEntry, HotlistMatcher

_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"
_CONFUSE = {"0": "O", "O": "0", "1": "I", "I": "1", "8": "B", "B": "8", "5": "S", "S": "5",
            "2": "Z", "Z": "2", "6": "G", "G": "6"}


def _plates(n: int, rng: random.Random) -> list[str]:
    out: set[str] = set()
    while len(out) < n:
        out.add(
            "".join(rng.choice(_LETTERS) for _ in range(2))
            + f"{rng.randrange(100):02d}"
            + "".join(rng.choice(_LETTERS) for _ in range(3))
        )
    return list(out)


def _rss_mib() -> float:
    with open("/proc/self/statm", encoding="ascii") as f:
        pages = int(f.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _time_per_call(fn: Any, args: list[Any], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for a in args:
            fn(a)
        best = min(best, (time.perf_counter() - t) / len(args))
    return best * 1e6  # microseconds


def run(quick: bool = False) -> dict[str, Any]:
    n = 100_000 if quick else 1_000_000
    rng = random.Random(42)
    plates = _plates(n, rng)
    reasons = ["stolen vehicle", "wanted person", "amber alert", "insurance", "bolo"]
    entries = [HotlistEntry(p, reasons[i % 5], priority=1 + i % 9) for i, p in enumerate(plates)]
    key = Ed25519PrivateKey.generate()

    t = time.perf_counter()
    blob = sign_hotlist(key, "national", 1, entries)
    sign_s = time.perf_counter() - t
    del entries
    gc.collect()

    rss0 = _rss_mib()
    t = time.perf_counter()
    doc = verify_signed(blob, key.public_key(), max_bytes=len(blob) + 1)
    verify_parse_s = time.perf_counter() - t
    t = time.perf_counter()
    hl = apply_document(None, doc)
    del doc
    matcher = HotlistMatcher([hl])
    build_s = time.perf_counter() - t
    del hl
    gc.collect()
    rss1 = _rss_mib()

    sample = rng.sample(plates, 2000)
    misses = _plates(2000, random.Random(7))
    conf = []
    for p in sample:
        i = next((j for j, c in enumerate(p) if c in _CONFUSE), None)
        conf.append(p if i is None else p[:i] + _CONFUSE[p[i]] + p[i + 1:])
    part1 = [p[:3] + "?" + p[4:] for p in sample[:500]]
    part2 = [p[:1] + "??" + p[3:] for p in sample[:200]]

    assert all(matcher.match(p) for p in sample[:100])
    assert all(matcher.match(p) for p in conf[:100])
    assert all(matcher.match(p) for p in part2[:20])

    exact_us = _time_per_call(matcher.match, sample)
    miss_us = _time_per_call(matcher.match, misses)
    conf_us = _time_per_call(matcher.match, conf)
    p1_us = _time_per_call(matcher.match, part1)
    p2_us = _time_per_call(matcher.match, part2, repeat=2)
    hits_p2 = statistics.mean(len(matcher.match(p)) for p in part2[:100])
    out = {
        "entries": n,
        "signed_file_mib": round(len(blob) / 2**20, 1),
        "sign_s": round(sign_s, 2),
        "verify_parse_s": round(verify_parse_s, 2),
        "index_build_s": round(build_s, 2),
        "load_total_s": round(verify_parse_s + build_s, 2),
        "matcher_rss_mib": round(rss1 - rss0, 1),
        "match_exact_us": round(exact_us, 1),
        "match_miss_us": round(miss_us, 1),
        "match_confusion_us": round(conf_us, 1),
        "match_partial1_us": round(p1_us, 1),
        "match_partial2_us": round(p2_us, 1),
        "partial2_mean_hits": round(hits_p2, 2),
        "quick": quick,
    }
    try:
        from firmware.benchmarks.common import envelope
    except ImportError:
        return out
    return envelope("hotlist", out)


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv[1:]), indent=2))
