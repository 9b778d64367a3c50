"""Bounded hotlist handling (security review 16.4, 16.5): the signature is checked over the raw
bytes before anything is parsed; a signed list is parsed as a stream; the compact index gives
the matcher's own results from a few KB of memory; entries outside the printable charset or
the length bounds are refused, counted, logged, and never reach an alert."""

from __future__ import annotations

import base64
import json
import random
import subprocess
import sys
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drivers.clock import FakeClock
from firmware.link.hotlist_doc import ParseStats, Row, iter_rows
from firmware.link.hotlist_index import BlockIndex, CompactMatcher, build_index
from firmware.link.hotlists import (
    HotlistSettings,
    HotlistSignatureError,
    HotlistUpdater,
    sign_hotlist,
    verify_signed,
)
from inference.hotlist_matcher import ConfusionTable, Hotlist, HotlistEntry, HotlistMatcher

AGENCY = Ed25519PrivateKey.generate()
PUB = AGENCY.public_key()
PUB_B64 = base64.b64encode(PUB.public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)).decode()
T0 = datetime(2026, 6, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[1]


def test_unsigned_document_is_refused_before_parsing_without_a_copy() -> None:
    # 64 MiB of well-formed list under a forged signature line: refusing it costs no parsing.
    rows = b"AB123CD\t0\t1\n" * (64 * 2**20 // 12)
    head = json.dumps({"format": "vigil-hotlist/2", "name": "x", "version": 9,
                       "kind": "full", "issued_at": T0.isoformat(),
                       "expires_at": "2030-01-01T00:00:00+00:00", "reasons": ["r"]}).encode()
    forged = (b"vigil-hotlist-signed/2 0000 " + base64.b64encode(bytes(64)) + b"\n"
              + head + b"\n" + rows)
    tracemalloc.start()
    try:
        with pytest.raises(HotlistSignatureError):
            verify_signed(forged, PUB, max_bytes=len(forged))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 * 2**20, f"{peak} bytes allocated to refuse an unsigned list"


def test_signed_list_is_parsed_as_a_stream(tmp_path: Path) -> None:
    entries = [HotlistEntry(f"AB{i:06d}", "stolen", 1) for i in range(600_000)]
    blob = sign_hotlist(AGENCY, "x", 1, entries, issued_at=T0, compress=True)
    doc = verify_signed(blob, PUB)
    tracemalloc.start()
    try:
        n = sum(1 for _ in iter_rows(doc, ParseStats()))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 600_000
    # The decompressed list is 7.8 MB (the old parser held it and a Python object per entry,
    # ~20 times that); streaming holds chunks of it, never one whole copy.
    assert peak < 0.75 * 13 * 600_000, peak


def test_compact_index_gives_the_matchers_own_results(tmp_path: Path) -> None:
    rng = random.Random(5)
    chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    plates = sorted({"".join(rng.choice(chars) for _ in range(rng.randint(4, 8)))
                     for _ in range(20_000)})
    entries = [HotlistEntry(p, ("stolen", "wanted", "amber")[i % 3], i % 9,
                            f"case-{i}" if i % 4 == 0 else None, "GB" if i % 6 == 0 else None)
               for i, p in enumerate(plates)]
    path = tmp_path / "x.idx"
    build_index(path, bytes(32), "x", 3, T0, T0.replace(year=2027),
                (Row(e.plate, e.reason, e.priority, e.entry_id, e.region) for e in entries),
                ConfusionTable())
    with BlockIndex(path, bytes(32), "x") as ix:
        compact = CompactMatcher([ix])
        reference = HotlistMatcher([Hotlist("x", 3, entries)])
        reads = rng.sample(plates, 300) + [
            "".join(rng.choice(chars + "?") for _ in range(rng.randint(4, 8)))
            for _ in range(2000)]
        for r in reads:
            assert compact.match(r, [r[::-1]]) == reference.match(r, [r[::-1]]), r
        assert len(compact) == len(reference)


def test_reopening_a_large_index_costs_little_memory(tmp_path: Path) -> None:
    """At start the daemon opens the stored index (no re-parse): a fresh process measures it."""
    path = tmp_path / "x.idx"
    build_index(path, bytes(32), "x", 1, T0, T0.replace(year=2027),
                (Row(f"AB{i:07d}", "stolen", 1) for i in range(300_000)), ConfusionTable())
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from firmware.link.hotlist_index import BlockIndex, CompactMatcher\n"
        "def rss():\n"
        "    return int(open('/proc/self/statm').read().split()[1]) * 4096\n"
        "r0 = rss()\n"
        "ix = BlockIndex(Path(sys.argv[1]), bytes(32), 'x')\n"
        "ix.check_all()\n"
        "m = CompactMatcher([ix])\n"
        "assert m.match('AB0123456')[0].rule == 'exact'\n"
        "for i in range(0, 300000, 97):\n"
        "    m.match(f'AB{i:07d}')\n"
        "print(rss() - r0)\n")
    out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    assert int(out) < 8 * 2**20, f"{int(out) / 2**20:.1f} MiB to open a 300k-entry index"


HOSTILE = [
    HotlistEntry("AB123CD", "stolen", 5),  # fine
    HotlistEntry("EV1L1", "stolen \x1b[2J\x1b[31mARMED", 9),  # escape sequence in the reason
    HotlistEntry("EV1L2", "stolen", 9, "x" * 1_000_000),  # a 1 MB id
    HotlistEntry("EV1L3", "stolen", 9, "case\x07", None),  # control character in the id
    HotlistEntry("EV1L4", "stolen", 9, None, "G\x1bB"),  # and in the region
    HotlistEntry("ev1l5", "stolen", 9),  # not a normalised plate
    HotlistEntry("EV1L6" * 10, "stolen", 9),  # a 50-character plate
    HotlistEntry("XY99ZZZ", "wanted", 2, "case-7", "GB"),  # fine
]


def test_control_characters_and_oversized_fields_never_reach_an_alert(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    s = HotlistSettings(path=str(tmp_path), agency_public_key=PUB_B64, names=("stolen",))
    audit: list[tuple[object, ...]] = []
    up = HotlistUpdater(s, None, bytes(32), FakeClock(T0), audit=lambda *a: audit.append(a))
    up.accept(sign_hotlist(AGENCY, "stolen", 1, HOSTILE, issued_at=T0))
    m = up._rebuild()
    assert len(m) == 2
    for plate in ("EV1L1", "EV1L2", "EV1L3", "EV1L4", "EV1L5", "EV1L6" * 10):
        assert m.match(plate) == []
    assert [x.entry for x in m.match("XY99ZZZ")] == [HOSTILE[-1]]
    st = up.status()
    assert st.refused_entries == {"stolen": 6}
    assert audit[-1][3]["refused_entries"] == 6  # type: ignore[index]
    (rec,) = [r for r in caplog.records if r.getMessage() == "hotlist entries refused"]
    assert rec.refused == 6  # type: ignore[attr-defined]
    assert all("\x1b" not in e and len(e) < 100 for e in rec.examples)  # type: ignore[attr-defined]


def test_an_edited_filter_is_caught_at_start(tmp_path: Path) -> None:
    """Clearing bits of the (keyed) filter would hide listed plates: the start check sees it."""
    path = tmp_path / "x.idx"
    build_index(path, bytes(32), "x", 1, T0, T0.replace(year=2027),
                (Row(f"AB{i:05d}", "stolen", 1) for i in range(5000)), ConfusionTable())
    with BlockIndex(path, bytes(32), "x") as ix:
        ix.check_all()
        at = ix._filter_at
    raw = bytearray(path.read_bytes())
    raw[at:at + 64] = bytes(64)
    path.write_bytes(bytes(raw))
    with BlockIndex(path, bytes(32), "x") as ix, pytest.raises(OSError, match="filter"):
        ix.check_all()


def test_the_daemon_builds_in_a_child_process_full_and_delta(tmp_path: Path) -> None:
    s = HotlistSettings(path=str(tmp_path), agency_public_key=PUB_B64, names=("stolen",))
    up = HotlistUpdater(s, None, bytes(32), FakeClock(T0), build_in_child=True)
    up.accept(sign_hotlist(AGENCY, "stolen", 1, HOSTILE, issued_at=T0))
    up.accept(sign_hotlist(AGENCY, "stolen", 2, [HotlistEntry("NEW1ABC", "amber", 3),
                                                 HotlistEntry("BAD\x1b", "x", 1)],
                           kind="delta", base_version=1, remove=["AB123CD"], issued_at=T0))
    m = up._rebuild()
    assert m.versions == {"stolen": 2} and len(m) == 2
    assert [x.entry.plate for x in m.match("NEW1A8C")] == ["NEW1ABC"]
    assert m.match("AB123CD") == []
    assert up.status().refused_entries == {"stolen": 1}
    up.close()
    # the refused count is kept in the index and shown again after a restart
    again = HotlistUpdater(s, None, bytes(32), FakeClock(T0))
    again.load()
    assert again.status().refused_entries == {"stolen": 1}
    with pytest.raises(HotlistSignatureError):
        up.accept(sign_hotlist(Ed25519PrivateKey.generate(), "stolen", 3, [], issued_at=T0))
