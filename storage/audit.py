"""The audit chain as pure functions: hashing, checkpoint signatures, verification, export.

Each entry's hash covers the previous entry's hash and every field of the entry, so editing,
removing or reordering any entry breaks the chain from that point on. The chain alone cannot
show that its *tail* was cut off, nor that someone holding the device key rewrote it entirely;
signed checkpoints (seq + hash signed with the device's Ed25519 key) copied off the device
(uplink, export) are what anchor it. :func:`verify_chain` takes entries and checkpoints and
returns a report; it does no I/O, so every attack is a fast unit test.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from storage.records import AuditCheckpoint, AuditEntry, VerifyReport

GENESIS_HASH = bytes(32)
_CHECKPOINT_DOMAIN = b"vigil/audit-checkpoint/v1|"


def canonical_bytes(
    seq: int,
    ts: datetime,
    actor: str,
    role: str,
    action: str,
    reason: str,
    result: str,
    detail: Mapping[str, Any],
) -> bytes:
    body = [seq, ts.isoformat(), actor, role, action, reason, result, dict(detail)]
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(prev_hash: bytes, canonical: bytes) -> bytes:
    return hashlib.sha256(prev_hash + canonical).digest()


def make_entry(
    prev: AuditEntry | None,
    ts: datetime,
    actor: str,
    role: str,
    action: str,
    reason: str,
    result: str,
    detail: Mapping[str, Any] | None = None,
) -> AuditEntry:
    seq = 1 if prev is None else prev.seq + 1
    prev_hash = GENESIS_HASH if prev is None else prev.entry_hash
    det = dict(detail or {})
    h = entry_hash(prev_hash, canonical_bytes(seq, ts, actor, role, action, reason, result, det))
    return AuditEntry(seq, ts, actor, role, action, reason, result, det, prev_hash, h)


def checkpoint_message(seq: int, hash_: bytes) -> bytes:
    return _CHECKPOINT_DOMAIN + seq.to_bytes(8, "big") + hash_


def sign_checkpoint(key: Ed25519PrivateKey, entry: AuditEntry, now: datetime) -> AuditCheckpoint:
    sig = key.sign(checkpoint_message(entry.seq, entry.entry_hash))
    return AuditCheckpoint(entry.seq, entry.entry_hash, now, sig)


def _public_key(key: Ed25519PublicKey | bytes | None) -> Ed25519PublicKey | None:
    if key is None or isinstance(key, Ed25519PublicKey):
        return key
    return Ed25519PublicKey.from_public_bytes(bytes(key))


def verify_chain(
    entries: Iterable[AuditEntry],
    checkpoint_public_key: Ed25519PublicKey | bytes | None,
    checkpoints: Sequence[AuditCheckpoint] = (),
    *,
    start_hash: bytes = GENESIS_HASH,
    start_seq: int = 1,
) -> VerifyReport:
    """Check hash links, recomputed hashes, sequence continuity and checkpoint signatures.

    Detects an edited entry (its hash no longer matches), a removed entry (sequence gap and a
    broken link), reordered entries, and — given checkpoints — a tail cut below the last
    checkpoint or a chain recomputed by someone without the device key.
    """
    problems: list[str] = []
    pub = _public_key(checkpoint_public_key)
    prev_hash = start_hash
    expect_seq = start_seq
    hashes: dict[int, bytes] = {}
    count = 0
    last_seq = start_seq - 1
    for e in entries:
        count += 1
        if e.seq != expect_seq:
            problems.append(f"seq {e.seq}: expected seq {expect_seq} (entry removed or reordered)")
        if e.prev_hash != prev_hash:
            problems.append(f"seq {e.seq}: prev_hash does not link to the previous entry")
        recomputed = entry_hash(
            e.prev_hash,
            canonical_bytes(e.seq, e.ts, e.actor, e.role, e.action, e.reason, e.result, e.detail),
        )
        if recomputed != e.entry_hash:
            problems.append(f"seq {e.seq}: content does not match its hash (entry edited)")
        hashes[e.seq] = e.entry_hash
        prev_hash = e.entry_hash
        expect_seq = e.seq + 1
        last_seq = e.seq
    verified = 0
    for cp in checkpoints:
        if pub is None:
            problems.append("checkpoints present but no public key given to verify them")
            break
        try:
            pub.verify(cp.signature, checkpoint_message(cp.seq, cp.entry_hash))
        except InvalidSignature:
            problems.append(f"checkpoint at seq {cp.seq}: bad signature")
            continue
        if cp.seq < start_seq:
            verified += 1
            continue
        have = hashes.get(cp.seq)
        if have is None:
            problems.append(
                f"checkpoint at seq {cp.seq}: entry missing (log truncated at seq {last_seq})"
            )
        elif have != cp.entry_hash:
            problems.append(f"checkpoint at seq {cp.seq}: entry hash differs (chain rewritten)")
        else:
            verified += 1
    return VerifyReport(
        ok=not problems,
        entries=count,
        last_seq=last_seq,
        checkpoints_verified=verified,
        problems=tuple(problems),
    )


#: Detail keys a transparency portal may publish as-is (counts and outcomes, no identities).
PUBLIC_DETAIL_KEYS = frozenset(
    {
        "results",
        "days",
        "reads",
        "images",
        "alerts",
        "unsent_outbox",
        "items",
        "overview_dropped",
        "crops_dropped",
        "sent_reads_dropped",
        "unsent_reads_dropped",
        "schema_version",
        "step",
        "version",
        "key",
    }
)


def anonymise(entry: AuditEntry) -> dict[str, Any]:
    """The public form of one entry: role not person, day not second, counts not identities.

    The entry hash and link are kept so whoever holds the full log can prove each published
    line corresponds to a real, unaltered entry.
    """
    detail = {k: v for k, v in entry.detail.items() if k in PUBLIC_DETAIL_KEYS}
    return {
        "seq": entry.seq,
        "day": entry.ts.date().isoformat(),
        "role": entry.role,
        "action": entry.action,
        "reason_given": bool(entry.reason.strip()),
        "result": entry.result,
        "detail": detail,
        "prev_hash": entry.prev_hash.hex(),
        "entry_hash": entry.entry_hash.hex(),
    }
