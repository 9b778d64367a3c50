"""Turning a verified document into an index file, in this process or in a child process.

Building a 1M-entry index takes ~100 MB for a few seconds. In the daemon that happens in a
child process (``python -m firmware.link.hotlist_build``), so whatever the allocator keeps
afterwards is given back when the child exits and the daemon's steady RSS does not move; the
peak still counts against the unit's ``MemoryMax`` (same cgroup), within it. The child gets the
key and the document on its stdin (never on a command line), verifies the document again, and
answers one JSON line on stdout.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from firmware.link.hotlist_doc import (
    HotlistUpdateError,
    ParseStats,
    Row,
    SignedDocument,
    iter_rows,
    verify_signed,
)
from firmware.link.hotlist_index import BlockIndex, IndexMeta, build_index
from inference.hotlist_matcher import ConfusionTable

CHILD_TIMEOUT_S = 600.0


class HotlistBuildError(HotlistUpdateError, RuntimeError):
    """The child process could not build the index."""


def document_rows(doc: SignedDocument, held: Path | None, key: bytes, stats: ParseStats,
                  max_bytes: int) -> Iterator[Row]:
    """A full list's rows; for a delta, the held list's rows without the removed plates, then
    the delta's (a plate listed again replaces its held row)."""
    new = iter_rows(doc, stats, max_bytes)
    if doc.kind == "full" or held is None:
        return new
    gone = set(doc.remove)

    def held_rows() -> Iterator[Row]:
        # A handle of its own: the matcher may be reading the held one in another thread.
        with BlockIndex(held, key, doc.name) as ix:
            yield from (r for r in ix.rows() if r.plate not in gone)

    return itertools.chain(held_rows(), new)


def build_document(doc: SignedDocument, path: Path, key: bytes, held: Path | None,
                   deltas: int, confusion: ConfusionTable, max_bytes: int
                   ) -> tuple[IndexMeta, ParseStats]:
    stats = ParseStats()
    meta = build_index(path, key, doc.name, doc.version, doc.issued_at, doc.expires_at,
                       document_rows(doc, held, key, stats, max_bytes), confusion,
                       deltas=deltas, stats=stats)
    return meta, stats


def build_in_child(blob: bytes, public_key: Ed25519PublicKey, path: Path, key: bytes,
                   held: Path | None, deltas: int, confusion: ConfusionTable, max_bytes: int,
                   timeout_s: float = CHILD_TIMEOUT_S) -> tuple[IndexMeta, ParseStats]:
    """:func:`build_document` in ``python -m firmware.link.hotlist_build``."""
    head = {"path": str(path), "key": key.hex(), "held": None if held is None else str(held),
            "deltas": deltas, "classes": list(confusion.classes), "max_bytes": max_bytes,
            "public_key": public_key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()}
    try:
        proc = subprocess.run([sys.executable, "-m", "firmware.link.hotlist_build"],
                              input=json.dumps(head).encode() + b"\n" + blob,
                              capture_output=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise HotlistBuildError(f"index build process: {e}") from e
    try:
        answer: dict[str, Any] = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError) as e:
        tail = proc.stderr.decode(errors="replace")[-300:]
        raise HotlistBuildError(f"index build process exited {proc.returncode}: {tail}") from e
    if "error" in answer:
        raise HotlistBuildError(str(answer["error"]))
    m = answer["meta"]
    meta = IndexMeta(**{**m, "issued_at": datetime.fromisoformat(m["issued_at"]),
                        "expires_at": datetime.fromisoformat(m["expires_at"])})
    stats = ParseStats(answer["refused"], dict(answer["by_rule"]), list(answer["examples"]))
    return meta, stats


def _child() -> int:
    data = sys.stdin.buffer.read()
    nl = data.index(b"\n")
    head = json.loads(data[:nl])
    blob = data[nl + 1:]
    del data
    try:
        pub = Ed25519PublicKey.from_public_bytes(bytes.fromhex(head["public_key"]))
        doc = verify_signed(blob, pub, head["max_bytes"])
        meta, stats = build_document(
            doc, Path(head["path"]), bytes.fromhex(head["key"]),
            None if head["held"] is None else Path(head["held"]), int(head["deltas"]),
            ConfusionTable(tuple(head["classes"])), int(head["max_bytes"]))
    except (HotlistUpdateError, OSError, ValueError) as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        return 1
    out = {**asdict(meta), "issued_at": meta.issued_at.isoformat(),
           "expires_at": meta.expires_at.isoformat()}
    print(json.dumps({"meta": out, "refused": stats.refused, "by_rule": stats.by_rule,
                      "examples": stats.examples}))
    return 0


if __name__ == "__main__":
    raise SystemExit(_child())
