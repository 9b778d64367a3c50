"""Field encryption, key hierarchy, key sources and settings validation."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from storage.crypto import DayCipher, KeyHierarchy, associated_data, normalise_plate
from storage.errors import InsecureKeyFile, InvalidSettings, KeySourceError, TamperDetected
from storage.keys import FileKeySource, MemoryKeySource
from storage.settings import RETENTION_POLICY_MAX_DAYS, StoreSettings


def test_seal_open_roundtrip_and_ad_binding() -> None:
    c = DayCipher("2026-11-23", os.urandom(32))
    ad = associated_data("reads", "payload", "row-1")
    sealed = c.seal(b"AB123CD", ad)
    assert b"AB123CD" not in sealed
    assert c.open(sealed, ad) == b"AB123CD"
    with pytest.raises(TamperDetected):
        c.open(sealed, associated_data("reads", "payload", "row-2"))
    with pytest.raises(TamperDetected):
        c.open(sealed, associated_data("images", "payload", "row-1"))
    flipped = bytearray(sealed)
    flipped[20] ^= 1
    with pytest.raises(TamperDetected):
        c.open(bytes(flipped), ad)
    with pytest.raises(TamperDetected):
        c.open(sealed[:10], ad)


def test_blind_index_is_keyed_per_day_and_normalised() -> None:
    a = DayCipher("d1", os.urandom(32))
    b = DayCipher("d2", os.urandom(32))
    assert a.blind_index("ab-123 cd") == a.blind_index("AB123CD")
    assert a.blind_index("AB123CD") != b.blind_index("AB123CD")
    assert a.blind_index("AB123CD") != a.blind_index("AB123CE")
    assert normalise_plate("ＡＢ 12") == "AB12"  # noqa: RUF001 - full-width on purpose


def test_key_hierarchy_wrap_and_subkeys() -> None:
    kek = os.urandom(32)
    h = KeyHierarchy(kek)
    day_key = os.urandom(32)
    wrapped = h.wrap_day_key("2026-11-23", day_key)
    assert day_key not in wrapped
    assert h.unwrap_day_key("2026-11-23", wrapped) == day_key
    with pytest.raises(TamperDetected):
        h.unwrap_day_key("2026-11-24", wrapped)  # a wrapped key moved to another day
    with pytest.raises(TamperDetected):
        KeyHierarchy(os.urandom(32)).unwrap_day_key("2026-11-23", wrapped)
    assert h.derive("hotlist") == KeyHierarchy(kek).derive("hotlist")
    assert h.derive("hotlist") != h.derive("other")
    assert len(h.derive("hotlist")) == 32
    assert "redacted" in repr(h)


def test_file_key_source_creates_0600_and_is_stable(tmp_path: Path) -> None:
    p = tmp_path / "keys" / "kek"
    src = FileKeySource(p)
    k1 = src.load_kek()
    assert len(k1) == 32
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert FileKeySource(p).load_kek() == k1
    assert k1.hex() not in repr(src) and k1.hex() not in src.describe()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_file_key_source_refuses_group_or_world_access(tmp_path: Path, mode: int) -> None:
    p = tmp_path / "kek"
    FileKeySource(p).load_kek()
    os.chmod(p, mode)
    with pytest.raises(InsecureKeyFile, match="0600"):
        FileKeySource(p).load_kek()


def test_file_key_source_refuses_wrong_length(tmp_path: Path) -> None:
    p = tmp_path / "kek"
    p.write_bytes(b"short")
    os.chmod(p, 0o600)
    with pytest.raises(KeySourceError, match="expected exactly 32"):
        FileKeySource(p).load_kek()


def test_memory_key_source() -> None:
    assert len(MemoryKeySource().load_kek()) == 32
    with pytest.raises(KeySourceError):
        MemoryKeySource(b"x")


def test_settings_enforce_policy_maximum() -> None:
    assert StoreSettings().retention_days == 30
    StoreSettings(retention_days=RETENTION_POLICY_MAX_DAYS)
    with pytest.raises(InvalidSettings, match="policy maximum"):
        StoreSettings(retention_days=RETENTION_POLICY_MAX_DAYS + 1)
    with pytest.raises(ValueError):
        StoreSettings(retention_days=0)
    with pytest.raises(InvalidSettings, match="integrity_check"):
        StoreSettings(integrity_check="sometimes")
