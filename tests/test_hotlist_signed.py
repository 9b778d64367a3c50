"""Signed hotlists: signature, rollback, deltas (incl. truncated), encrypted storage, polling."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drivers.clock import FakeClock
from firmware.link.hotlists import (
    HotlistDeltaError,
    HotlistFile,
    HotlistFormatError,
    HotlistRollbackError,
    HotlistSettings,
    HotlistSignatureError,
    HotlistStorageError,
    HotlistUpdater,
    apply_document,
    load_public_key,
    sign_hotlist,
    verify_signed,
)
from inference.hotlist_matcher import HotlistEntry

AGENCY = Ed25519PrivateKey.generate()
PUB = AGENCY.public_key()
PUB_B64 = base64.b64encode(
    PUB.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
).decode()
E1 = (HotlistEntry("AB123CD", "stolen", 1), HotlistEntry("XY99ZZZ", "wanted", 2, "case-7", "GB"))


def full(version: int, entries: tuple[HotlistEntry, ...] = E1, key: Ed25519PrivateKey = AGENCY,
         name: str = "stolen") -> bytes:
    return sign_hotlist(key, name, version, entries)


def test_full_roundtrip() -> None:
    doc = verify_signed(full(3), PUB)
    assert (doc.name, doc.version, doc.kind) == ("stolen", 3, "full")
    assert doc.entries == E1
    assert verify_signed(gzip.compress(full(3)), PUB).entries == E1


def test_bad_signature_foreign_key_and_unsigned() -> None:
    with pytest.raises(HotlistSignatureError):
        verify_signed(full(3, key=Ed25519PrivateKey.generate()), PUB)
    env = json.loads(full(3))
    payload = json.loads(base64.b64decode(env["payload"]))
    payload["entries"].append(["EVIL1", 0, 1])
    env["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    with pytest.raises(HotlistSignatureError):
        verify_signed(json.dumps(env).encode(), PUB)
    env = json.loads(full(3))
    env["signature"] = ""
    with pytest.raises(HotlistSignatureError, match="not signed"):
        verify_signed(json.dumps(env).encode(), PUB)
    with pytest.raises(HotlistSignatureError):
        verify_signed(base64.b64decode(json.loads(full(3))["payload"]), PUB)  # bare payload


def test_rollback_and_replay_refused() -> None:
    v5 = apply_document(None, verify_signed(full(5), PUB))
    with pytest.raises(HotlistRollbackError):
        apply_document(v5, verify_signed(full(4), PUB))
    with pytest.raises(HotlistRollbackError):
        apply_document(v5, verify_signed(full(5), PUB))
    assert apply_document(v5, verify_signed(full(6), PUB)).version == 6


def test_delta_applies_and_checks_base() -> None:
    base = apply_document(None, verify_signed(full(5), PUB))
    delta = sign_hotlist(AGENCY, "stolen", 6, [HotlistEntry("NEW1ABC", "amber", 1),
                                                HotlistEntry("AB123CD", "stolen (armed)", 1)],
                         kind="delta", base_version=5, remove=["XY99ZZZ"])
    v6 = apply_document(base, verify_signed(delta, PUB))
    assert v6.version == 6
    assert {(e.plate, e.reason) for e in v6.entries} == {
        ("AB123CD", "stolen (armed)"), ("NEW1ABC", "amber")}
    with pytest.raises(HotlistDeltaError):
        apply_document(v6, verify_signed(
            sign_hotlist(AGENCY, "stolen", 8, [], kind="delta", base_version=7), PUB))
    with pytest.raises(HotlistDeltaError):
        apply_document(None, verify_signed(delta, PUB))


def test_truncated_delta_refused() -> None:
    delta = sign_hotlist(AGENCY, "stolen", 6, E1, kind="delta", base_version=5)
    for cut in (len(delta) // 2, len(delta) - 5):
        with pytest.raises((HotlistFormatError, HotlistSignatureError)):
            verify_signed(delta[:cut], PUB)
    with pytest.raises(HotlistFormatError, match="truncated"):
        verify_signed(gzip.compress(delta)[:-12], PUB)
    # signed, but the agency's tool cut the payload: structure check catches it
    payload = json.dumps({"format": "vigil-hotlist/1", "name": "stolen", "version": 6,
                          "kind": "delta", "issued_at": "x", "reasons": ["a"],
                          "entries": [["AB1"]], "base_version": 5}).encode()
    env = {"format": "vigil-hotlist-signed/1", "key_id": "k",
           "signature": base64.b64encode(AGENCY.sign(payload)).decode(),
           "payload": base64.b64encode(payload).decode()}
    with pytest.raises(HotlistFormatError):
        verify_signed(json.dumps(env).encode(), PUB)


def test_malformed_fields() -> None:
    with pytest.raises(HotlistFormatError):
        verify_signed(full(0), PUB)
    with pytest.raises(HotlistFormatError):
        verify_signed(full(2, (HotlistEntry("ab 1", "x"),)), PUB)
    with pytest.raises(HotlistFormatError):
        verify_signed(b"x" * 100, PUB, max_bytes=10)


def test_public_key_forms(tmp_path: Path) -> None:
    pem = tmp_path / "agency.pem"
    pem.write_bytes(PUB.public_bytes(serialization.Encoding.PEM,
                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    for v in (PUB_B64, str(pem)):
        verify_signed(full(1), load_public_key(v))
    with pytest.raises(HotlistSignatureError):
        load_public_key("")
    with pytest.raises(HotlistSignatureError):
        load_public_key("bm90IGEga2V5")


def test_file_encrypted_and_tamper_evident(tmp_path: Path) -> None:
    key = bytes(range(32))
    f = HotlistFile(tmp_path, "stolen", key)
    blob = full(1)
    f.save([blob])
    raw = f.path.read_bytes()
    assert b"AB123CD" not in raw and b"stolen" not in raw
    assert f.load() == [blob]
    with pytest.raises(HotlistStorageError):
        HotlistFile(tmp_path, "stolen", bytes(32)).load()
    f.path.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
    with pytest.raises(HotlistStorageError):
        f.load()
    assert HotlistFile(tmp_path, "other", key).load() is None


def _updater(tmp_path: Path, transport: object = None) -> HotlistUpdater:
    s = HotlistSettings(path=str(tmp_path), agency_public_key=PUB_B64, names=("stolen",))
    return HotlistUpdater(s, transport, bytes(range(32)), FakeClock())  # type: ignore[arg-type]


def test_updater_accept_persist_reload(tmp_path: Path) -> None:
    seen = []
    up = _updater(tmp_path)
    up._on_update = seen.append
    up.accept(full(5))
    up.accept(sign_hotlist(AGENCY, "stolen", 6, [HotlistEntry("NEW1ABC", "amber", 1)],
                           kind="delta", base_version=5))
    up._rebuild()
    assert seen[-1].versions == {"stolen": 6}
    assert [m.rule for m in seen[-1].match("NEW1A8C")] == ["confusion"]
    with pytest.raises(HotlistRollbackError):
        up.accept(full(4))
    with pytest.raises(HotlistFormatError):
        up.accept(full(9, name="other"))
    again = _updater(tmp_path)
    m = again.load()
    assert m.versions == {"stolen": 6} and len(m) == 3
    # the rollback floor survives a restart
    with pytest.raises(HotlistRollbackError):
        again.accept(full(6))
    # a full list at the version the deltas reached compacts the chain
    again.accept(full(6, (*E1, HotlistEntry("NEW1ABC", "amber", 1))))
    assert len(HotlistFile(tmp_path, "stolen", bytes(range(32))).load() or []) == 1


def test_updater_refuses_stored_file_with_wrong_key(tmp_path: Path) -> None:
    up = _updater(tmp_path)
    up.accept(full(5))
    s = HotlistSettings(path=str(tmp_path), agency_public_key=PUB_B64, names=("stolen",))
    other = HotlistUpdater(s, None, bytes(32), FakeClock())
    audit: list[tuple[object, ...]] = []
    other._audit = lambda *a: audit.append(a)
    assert len(other.load()) == 0
    assert audit and audit[0][2] == "refused"
