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
_CHECKPOINT_DOMAIN_V2 = b"vigil/audit-checkpoint/v2|"
#: The JSON form of a checkpoint published off the unit (uplink batches and heartbeats).
PUBLISHED_FORMAT = "vigil-audit-checkpoint/2"


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
    """What checkpoints before v2 signed: the head's seq and hash (not the time)."""
    return _CHECKPOINT_DOMAIN + seq.to_bytes(8, "big") + hash_


def checkpoint_message_v2(seq: int, hash_: bytes, signed_at: datetime, number: int = 0) -> bytes:
    """Head seq (= entry count: the chain starts at 1 and has no gaps), head hash, the signing
    time and the publication number, so a published checkpoint can be neither moved in time nor
    dropped from the agency's sequence unnoticed."""
    return (_CHECKPOINT_DOMAIN_V2 + seq.to_bytes(8, "big") + hash_ + number.to_bytes(8, "big")
            + signed_at.isoformat().encode())


def sign_checkpoint(key: Ed25519PrivateKey, entry: AuditEntry, now: datetime,
                    number: int = 0) -> AuditCheckpoint:
    sig = key.sign(checkpoint_message_v2(entry.seq, entry.entry_hash, now, number))
    return AuditCheckpoint(entry.seq, entry.entry_hash, now, sig, number)


def _signature_ok(pub: Ed25519PublicKey, cp: AuditCheckpoint, *, legacy: bool) -> bool:
    try:
        pub.verify(cp.signature,
                   checkpoint_message_v2(cp.seq, cp.entry_hash, cp.signed_at, cp.number))
        return True
    except InvalidSignature:
        if not legacy:
            return False
    try:  # a checkpoint stored on the unit before v2
        pub.verify(cp.signature, checkpoint_message(cp.seq, cp.entry_hash))
        return True
    except InvalidSignature:
        return False


def checkpoint_json(cp: AuditCheckpoint, device_id: str = "") -> dict[str, Any]:
    """The published form: what leaves the unit with every uplink batch and heartbeat."""
    return {
        "format": PUBLISHED_FORMAT,
        "device_id": device_id,
        "number": cp.number,
        "seq": cp.seq,
        "entries": cp.seq,
        "entry_hash": cp.entry_hash.hex(),
        "signed_at": cp.signed_at.isoformat(),
        "signature": cp.signature.hex(),
    }


def checkpoint_from_json(doc: Mapping[str, Any]) -> AuditCheckpoint:
    """Parse one published checkpoint; ``ValueError`` if it is not one."""
    try:
        if doc.get("format") != PUBLISHED_FORMAT:
            raise ValueError(f"format is {doc.get('format')!r}, expected {PUBLISHED_FORMAT}")
        return AuditCheckpoint(int(doc["seq"]), bytes.fromhex(doc["entry_hash"]),
                               datetime.fromisoformat(doc["signed_at"]),
                               bytes.fromhex(doc["signature"]), int(doc["number"]))
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"not a published checkpoint: {e!r}") from e


def published_problems(
    published: Sequence[AuditCheckpoint], public_key: Ed25519PublicKey | bytes
) -> list[str]:
    """What is wrong with a stream of published checkpoints, in the order they were received
    (the agency side checks this on every arrival): none at all, a bad signature, a gap in the
    publication numbers (a checkpoint missing: the unit numbers them 1, 2, ... and moves on only
    once one was acknowledged, so a lost answer repeats a number, never skips one), a number, a
    head or a time that goes backwards (out of order, or a rolled-back log), or two different
    hashes signed for one seq (the chain was rewritten and re-signed)."""
    pub = _public_key(public_key)
    assert pub is not None
    if not published:
        return ["no published checkpoints: nothing anchors the log off the unit"]
    problems: list[str] = []
    seen: dict[int, bytes] = {}
    prev: AuditCheckpoint | None = None
    for cp in published:
        if not _signature_ok(pub, cp, legacy=False):
            problems.append(f"published checkpoint #{cp.number} (seq {cp.seq}): bad signature")
            continue
        if seen.get(cp.seq, cp.entry_hash) != cp.entry_hash:
            problems.append(f"published checkpoint #{cp.number}: a second, different head "
                            f"signed for seq {cp.seq} (chain rewritten and re-signed)")
        seen[cp.seq] = cp.entry_hash
        if prev is None and cp.number != 1:
            problems.append(f"published checkpoints #1..#{cp.number - 1} are missing")
        if prev is not None and cp.number > prev.number + 1:
            problems.append(f"published checkpoints #{prev.number + 1}..#{cp.number - 1} are "
                            "missing")
        if prev is not None and (cp.number < prev.number or cp.seq < prev.seq
                                 or cp.signed_at < prev.signed_at):
            problems.append(f"published checkpoint #{cp.number} (seq {cp.seq}, signed "
                            f"{cp.signed_at.isoformat()}) is behind the one before it (seq "
                            f"{prev.seq}): out of order or the log was rolled back")
        prev = cp
    return problems


def verify_against(
    entries: Iterable[AuditEntry],
    public_key: Ed25519PublicKey | bytes,
    published: Sequence[AuditCheckpoint],
    local_checkpoints: Sequence[AuditCheckpoint] = (),
) -> VerifyReport:
    """The local chain checked against checkpoints that were published off the unit.

    Anything done to entries at or below the last published head is detected: a cut tail
    (the published seq is missing), an edit (hash chain, or the published hash differs even if
    the chain was recomputed), a re-signed rewrite (the published hash differs; the key on the
    card cannot change what already left). Changes after the last published head are only
    caught by the chain and the unit's own checkpoints."""
    report = verify_chain(entries, public_key, [*published, *local_checkpoints])
    problems = [*published_problems(published, public_key), *report.problems]
    return VerifyReport(ok=not problems, entries=report.entries, last_seq=report.last_seq,
                        checkpoints_verified=report.checkpoints_verified,
                        problems=tuple(problems))


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
        if not _signature_ok(pub, cp, legacy=True):
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
