"""`vigil bench hotlist`: a 1,000,000-entry hotlist, from signed file to match latency.

Figures: time to sign (agency side, for reference), verify (signature over the raw bytes) and
build the encrypted block index from the signed bytes (what a device does on every full
update), open and check the index (what it does at start), the process's peak resident memory
(``VmHWM``) while loading, the resident memory the matcher keeps, and per-read match latency for
an exact hit, a miss, a confusion hit, and partial reads with one and two unknown characters.
``quick`` uses 100,000 entries. Run it in a bare process so that ``peak_rss_mib`` is the load's:
``vigil bench hotlist --json``.
"""

from __future__ import annotations

import gc
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.link.hotlist_doc import ParseStats, iter_rows, sign_hotlist, verify_signed
from firmware.link.hotlist_index import BlockIndex, CompactMatcher, build_index
from inference.hotlist_matcher import ConfusionTable, Hotlist, HotlistEntry, HotlistMatcher

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


def _status_mib(field: str) -> float:
    """``VmRSS`` or ``VmHWM`` (peak) of this process, MiB."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _rss_mib() -> float:
    return _status_mib("VmRSS")


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
    blob = sign_hotlist(key, "national", 1, entries, compress=True)
    sign_s = time.perf_counter() - t
    del entries
    gc.collect()

    import tempfile

    rss0 = _rss_mib()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "national.idx"
        signed = Path(tmp) / "national.vhl"
        signed.write_bytes(blob)
        bare = _bare_load(signed, key.public_key())
        dek = bytes(range(32))
        t = time.perf_counter()
        doc = verify_signed(blob, key.public_key())
        verify_s = time.perf_counter() - t
        t = time.perf_counter()
        stats = ParseStats()
        build_index(path, dek, "national", doc.version, doc.issued_at, doc.expires_at,
                    iter_rows(doc, stats), ConfusionTable())
        build_s = time.perf_counter() - t
        del doc
        gc.collect()
        peak = _status_mib("VmHWM")
        t = time.perf_counter()
        index = BlockIndex(path, dek, "national")
        index.check_all()
        open_s = time.perf_counter() - t
        index_file_mib = path.stat().st_size / 2**20
        matcher = CompactMatcher([index])
        gc.collect()
        rss1 = _rss_mib()
        figures = _latencies(matcher, plates, random.Random(3))
        index.close()
    # The all-in-memory index the compact one replaced, same reads, same moment: the fair
    # comparison on a machine whose load varies.
    reference = HotlistMatcher([Hotlist("national", 1, (
        HotlistEntry(p, reasons[i % 5], priority=1 + i % 9) for i, p in enumerate(plates)))])
    figures.update({f"in_memory_{k}": v
                    for k, v in _latencies(reference, plates, random.Random(3)).items()})
    del reference
    out = {
        "entries": n,
        "signed_file_mib": round(len(blob) / 2**20, 1),
        "index_file_mib": round(index_file_mib, 1),
        "sign_s": round(sign_s, 2),
        "verify_s": round(verify_s, 3),
        "index_build_s": round(build_s, 2),
        "open_check_s": round(open_s, 2),
        "rss_before_load_mib": round(rss0, 1),
        "peak_rss_mib": round(peak, 1),
        **bare,
        "matcher_rss_mib": round(rss1 - rss0, 1),
        **figures,
        "refused_rows": stats.refused,
        "quick": quick,
    }
    try:
        from firmware.benchmarks.common import envelope
    except ImportError:
        return out
    return envelope("hotlist", out)


def _bare_load(signed: Path, public_key: Any) -> dict[str, float]:
    """Verify and index the signed file in a fresh interpreter: its peak RSS is the load's."""
    import base64
    import subprocess

    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    proc = subprocess.run(
        [sys.executable, "-m", "firmware.benchmarks.hotlist", "--load", str(signed),
         base64.b64encode(raw).decode()], capture_output=True, text=True, check=True)
    return {k: float(v) for k, v in json.loads(proc.stdout).items()}


def load_only(signed: Path, public_key_b64: str) -> dict[str, float]:
    """What the updater does with a full list: verify, stream-parse, build the index, open and
    check it; then the process's peak RSS, and its RSS with the matcher open."""
    import tempfile

    from firmware.link.hotlists import load_public_key

    rss0 = _rss_mib()
    t = time.perf_counter()
    blob = signed.read_bytes()
    doc = verify_signed(blob, load_public_key(public_key_b64))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.idx"
        build_index(path, bytes(32), doc.name, doc.version, doc.issued_at, doc.expires_at,
                    iter_rows(doc, ParseStats()), ConfusionTable())
        del doc, blob
        gc.collect()
        index = BlockIndex(path, bytes(32), "national")
        index.check_all()
        matcher = CompactMatcher([index])
        matcher.match("AB12CDE")
        load_s = time.perf_counter() - t
        rss1 = _rss_mib()
        index.close()
    return {"bare_rss_before_mib": round(rss0, 1),
            "bare_load_peak_rss_mib": round(_status_mib("VmHWM"), 1),
            "bare_rss_after_load_mib": round(rss1, 1), "bare_load_s": round(load_s, 2)}


def _latencies(matcher: HotlistMatcher, plates: list[str], rng: random.Random
               ) -> dict[str, float]:
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
    return {
        "match_exact_us": round(exact_us, 1),
        "match_miss_us": round(miss_us, 1),
        "match_confusion_us": round(conf_us, 1),
        "match_partial1_us": round(p1_us, 1),
        "match_partial2_us": round(p2_us, 1),
        "partial2_mean_hits": round(hits_p2, 2),
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["--load"]:
        print(json.dumps(load_only(Path(sys.argv[2]), sys.argv[3])))
    else:
        print(json.dumps(run(quick="--quick" in sys.argv[1:]), indent=2))
