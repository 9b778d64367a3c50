"""Audit chain as pure functions: every tampering is a fast unit test."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from storage.audit import anonymise, make_entry, sign_checkpoint, verify_chain
from storage.records import AuditEntry

T0 = datetime(2026, 11, 23, 12, tzinfo=UTC)


def _chain(n: int) -> list[AuditEntry]:
    out: list[AuditEntry] = []
    for i in range(n):
        prev = out[-1] if out else None
        out.append(
            make_entry(
                prev,
                T0 + timedelta(seconds=i),
                f"user{i % 3}",
                "technician",
                "console.command",
                "maintenance",
                "ok",
                {"i": i},
            )
        )
    return out


def test_intact_chain_verifies_with_checkpoints() -> None:
    key = Ed25519PrivateKey.generate()
    chain = _chain(20)
    cps = [sign_checkpoint(key, chain[9], T0), sign_checkpoint(key, chain[19], T0)]
    rep = verify_chain(chain, key.public_key(), cps)
    assert rep.ok, rep.problems
    assert rep.entries == 20 and rep.last_seq == 20 and rep.checkpoints_verified == 2


def test_edited_entry_detected() -> None:
    chain = _chain(10)
    chain[4] = dataclasses.replace(chain[4], reason="nothing to see")
    rep = verify_chain(chain, None)
    assert not rep.ok
    assert any("seq 5" in p and "edited" in p for p in rep.problems)


def test_removed_entry_detected() -> None:
    chain = _chain(10)
    del chain[3]
    rep = verify_chain(chain, None)
    assert not rep.ok
    assert any("removed" in p for p in rep.problems)


def test_reordered_entries_detected() -> None:
    chain = _chain(10)
    chain[2], chain[3] = chain[3], chain[2]
    assert not verify_chain(chain, None).ok


def test_recomputed_chain_fails_against_signed_checkpoint() -> None:
    key = Ed25519PrivateKey.generate()
    chain = _chain(10)
    cp = sign_checkpoint(key, chain[9], T0)
    # An attacker edits entry 3 and recomputes every later hash: the links are consistent...
    forged = chain[:2]
    edited = make_entry(
        forged[-1], chain[2].ts, "someone", "technician", "console.command", "innocent", "ok", {}
    )
    forged.append(edited)
    for e in chain[3:]:
        forged.append(
            make_entry(forged[-1], e.ts, e.actor, e.role, e.action, e.reason, e.result, e.detail)
        )
    assert verify_chain(forged, None).ok
    # ...but the signed checkpoint no longer matches.
    rep = verify_chain(forged, key.public_key(), [cp])
    assert not rep.ok and any("rewritten" in p for p in rep.problems)


def test_truncated_tail_detected_by_checkpoint() -> None:
    key = Ed25519PrivateKey.generate()
    chain = _chain(10)
    cp = sign_checkpoint(key, chain[9], T0)
    rep = verify_chain(chain[:7], key.public_key(), [cp])
    assert not rep.ok and any("truncated" in p for p in rep.problems)


def test_forged_checkpoint_signature_detected() -> None:
    chain = _chain(5)
    real = Ed25519PrivateKey.generate()
    cp = sign_checkpoint(Ed25519PrivateKey.generate(), chain[4], T0)
    rep = verify_chain(chain, real.public_key(), [cp])
    assert not rep.ok and any("bad signature" in p for p in rep.problems)


def test_anonymised_export_drops_identities() -> None:
    e = make_entry(
        None,
        T0,
        "alice",
        "operator",
        "plate.search",
        "case 7 J. Doe",
        "ok",
        {"query": "deadbeef", "results": 3},
    )
    pub = anonymise(e)
    text = repr(pub)
    assert "alice" not in text and "Doe" not in text and "deadbeef" not in text
    assert pub["role"] == "operator" and pub["detail"] == {"results": 3}
    assert pub["day"] == "2026-11-23" and pub["entry_hash"] == e.entry_hash.hex()
