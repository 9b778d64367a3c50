"""Signed hotlists: signature over the raw bytes, rollback, deltas (incl. truncated), the
encrypted index at rest, reload."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drivers.clock import FakeClock
from firmware.link.hotlist_doc import ParseStats, iter_rows
from firmware.link.hotlists import (
    HotlistDeltaError,
    HotlistFormatError,
    HotlistRollbackError,
    HotlistSettings,
    HotlistSignatureError,
    HotlistUpdater,
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
T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = bytes(range(32))


def full(version: int, entries: tuple[HotlistEntry, ...] = E1, key: Ed25519PrivateKey = AGENCY,
         name: str = "stolen", **kw: object) -> bytes:
    kw.setdefault("issued_at", T0)
    return sign_hotlist(key, name, version, entries, **kw)  # type: ignore[arg-type]


def rows(blob: bytes) -> list[HotlistEntry]:
    doc = verify_signed(blob, PUB)
    return [HotlistEntry(r.plate, r.reason, r.priority, r.entry_id, r.region)
            for r in iter_rows(doc, ParseStats())]


def test_full_roundtrip_plain_and_gzip() -> None:
    doc = verify_signed(full(3), PUB)
    assert (doc.name, doc.version, doc.kind) == ("stolen", 3, "full")
    assert doc.issued_at == T0 and doc.expires_at == T0 + timedelta(days=7)
    assert rows(full(3)) == list(E1)
    assert rows(full(3, compress=True)) == list(E1)


def test_bad_signature_foreign_key_and_unsigned() -> None:
    with pytest.raises(HotlistSignatureError):
        verify_signed(full(3, key=Ed25519PrivateKey.generate()), PUB)
    blob = full(3)
    with pytest.raises(HotlistSignatureError):  # one entry added after signing
        verify_signed(blob + b"EVIL1\t0\t1\n", PUB)
    line, _, body = blob.partition(b"\n")
    with pytest.raises(HotlistSignatureError):  # unsigned: the body alone
        verify_signed(body, PUB)
    with pytest.raises(HotlistSignatureError):
        verify_signed(line.rsplit(b" ", 1)[0] + b" \n" + body, PUB)


def test_truncated_documents_refused() -> None:
    delta = full(6, kind="delta", base_version=5)
    for cut in (len(delta) // 2, len(delta) - 5, 20):
        with pytest.raises((HotlistFormatError, HotlistSignatureError)):
            verify_signed(delta[:cut], PUB)
    with pytest.raises((HotlistFormatError, HotlistSignatureError)):
        verify_signed(full(6, compress=True)[:-12], PUB)


def test_malformed_header_fields() -> None:
    with pytest.raises(HotlistFormatError):
        verify_signed(full(0), PUB)
    with pytest.raises(HotlistFormatError, match="expires_at"):
        verify_signed(full(2, expires_at=T0), PUB)
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


def _updater(tmp_path: Path, key: bytes = KEY, **kw: object) -> HotlistUpdater:
    s = HotlistSettings(path=str(tmp_path), agency_public_key=PUB_B64, names=("stolen",))
    return HotlistUpdater(s, None, key, FakeClock(T0), **kw)  # type: ignore[arg-type]


def test_rollback_replay_and_delta_base(tmp_path: Path) -> None:
    up = _updater(tmp_path)
    up.accept(full(5))
    with pytest.raises(HotlistRollbackError):
        up.accept(full(4))
    with pytest.raises(HotlistRollbackError):  # the same version with other entries
        up.accept(full(5, E1[:1]))
    with pytest.raises(HotlistDeltaError):
        up.accept(full(8, (), kind="delta", base_version=7))
    assert up.accept(full(6)).version == 6


def test_delta_applies(tmp_path: Path) -> None:
    up = _updater(tmp_path)
    up.accept(full(5))
    up.accept(full(6, (HotlistEntry("NEW1ABC", "amber", 1),
                       HotlistEntry("AB123CD", "stolen (armed)", 1)),
                   kind="delta", base_version=5, remove=["XY99ZZZ"]))
    m = up._rebuild()
    assert m.versions == {"stolen": 6}
    assert {(x.entry.plate, x.reason) for p in ("AB123CD", "NEW1ABC", "XY99ZZZ")
            for x in m.match(p)} == {("AB123CD", "stolen (armed)"), ("NEW1ABC", "amber")}
    assert [x.rule for x in m.match("NEW1A8C")] == ["confusion"]


def test_updater_accept_persist_reload(tmp_path: Path) -> None:
    seen = []
    up = _updater(tmp_path, on_update=seen.append)
    up.accept(full(5))
    up.accept(full(6, (HotlistEntry("NEW1ABC", "amber", 1),), kind="delta", base_version=5))
    up._rebuild()
    assert seen[-1].versions == {"stolen": 6}
    with pytest.raises(HotlistFormatError):
        up.accept(full(9, name="other"))
    raw = (tmp_path / "stolen.idx").read_bytes()
    assert b"AB123CD" not in raw and b"stolen" not in raw  # encrypted at rest
    again = _updater(tmp_path)
    m = again.load()
    assert m.versions == {"stolen": 6} and len(m) == 3
    assert m.match("XY99ZZZ")[0].entry == E1[1]
    # a full list at the version the deltas reached is taken (it resets the delta count)
    again.accept(full(6, (*E1, HotlistEntry("NEW1ABC", "amber", 1))))
    assert again.status().versions == {"stolen": 6}


def test_stored_index_with_wrong_key_is_refused_and_audited(tmp_path: Path) -> None:
    _updater(tmp_path).accept(full(5))
    audit: list[tuple[object, ...]] = []
    other = _updater(tmp_path, key=bytes(32), audit=lambda *a: audit.append(a))
    assert len(other.load()) == 0
    assert audit and audit[0][2] == "refused"
    assert "stolen" in other.status().errors


def test_an_old_format_file_is_removed_at_start(tmp_path: Path) -> None:
    (tmp_path / "stolen.vhl").write_bytes(b"VHL1" + bytes(40))
    up = _updater(tmp_path)
    assert len(up.load()) == 0 and not (tmp_path / "stolen.vhl").exists()
    assert up.status().errors == {}
