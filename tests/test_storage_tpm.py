"""The KEK sealed by a TPM 2.0 (finding 7), against a software TPM (swtpm) started here.

With the file key source the KEK sits in a file beside the data: whoever copies the card has
it. With a TPM, no file under the state directory holds the KEK, a copy of the sealed files does
not unseal on another TPM, and the store says which source it uses (``vigil status`` shows
``store.key_source``).
"""

from __future__ import annotations

import random
import shutil
import stat
import time
from pathlib import Path

import pytest

from drivers.clock import FakeClock
from storage import FileKeySource, tpm
from storage.crypto import KeyHierarchy
from storage.settings import StoreSettings
from storage.store import Store
from storage.tpm import SEALED_PRIV, SEALED_PUB, TpmError, TpmKeySource, key_source_for
from tests.kit import make_read
from tests.kit.people import INVESTIGATOR
from tests.kit.swtpm import software_tpm


def _open(path: Path, source: object) -> Store:
    return Store.open(path, source, StoreSettings(), FakeClock(), background=False)  # type: ignore[arg-type]


def _holding(directory: Path, needle: bytes) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")
                  if p.is_file() and needle in p.read_bytes())


@pytest.fixture(autouse=True)
def _no_host_tpm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only the software TPM a test starts counts, not one this machine may have."""
    monkeypatch.delenv(tpm.TCTI_ENV, raising=False)
    monkeypatch.setattr(tpm, "TPM_DEVICE", tmp_path / "no-tpmrm0")


def test_file_key_source_leaves_the_kek_beside_the_data(tmp_path: Path) -> None:
    """What the TPM closes: with the fallback the KEK is a file on the same card."""
    state = tmp_path / "state"
    source = key_source_for(state / "kek.bin", tcti=None)
    assert isinstance(source, FileKeySource)
    kek = source.load_kek()
    assert _holding(state, kek) == ["kek.bin"]


def test_kek_sealed_by_the_tpm_is_in_no_file_and_the_store_says_so(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with software_tpm(tmp_path / "tpm") as tcti:
        source = key_source_for(state / "kek.bin", tcti=tcti)
        assert isinstance(source, TpmKeySource)
        t0 = time.perf_counter()
        with _open(state / "vigil.db", source) as store:
            first_open_s = time.perf_counter() - t0
            read = make_read(random.Random(1), plate="AB123CD")
            store.put_read(read)
            assert store.health().key_source == f"tpm:{tcti}"
            assert store.health().as_dict()["key_source"] == f"tpm:{tcti}"
            kek = source.load_kek()
        for name in (SEALED_PUB, SEALED_PRIV):
            assert stat.S_IMODE((state / name).stat().st_mode) == 0o600
        assert not (state / "kek.bin").exists()
        assert _holding(state, kek) == []  # not in the sealed files, the database or the WAL
        # A restart unseals the same KEK: the store opens and reads back.
        again = key_source_for(state / "kek.bin", tcti=tcti)
        assert isinstance(again, TpmKeySource)
        t0 = time.perf_counter()
        assert again.load_kek() == kek
        unseal_s = time.perf_counter() - t0
        with _open(state / "vigil.db", again) as store:
            (back,) = store.get_reads([read.read_id], INVESTIGATOR)
            assert back.plate_text == "AB123CD"
    print(f"swtpm: first open with sealing {first_open_s * 1000:.0f} ms, "
          f"unseal {unseal_s * 1000:.0f} ms")
    assert KeyHierarchy(kek).key_check  # a real 32-byte key


def test_sealed_files_copied_to_another_tpm_do_not_unseal(tmp_path: Path) -> None:
    with software_tpm(tmp_path / "tpm-a") as tcti_a:
        TpmKeySource(tmp_path / "unit", tcti_a).load_kek()
    shutil.copytree(tmp_path / "unit", tmp_path / "copy")
    with software_tpm(tmp_path / "tpm-b") as tcti_b, pytest.raises(TpmError):
        TpmKeySource(tmp_path / "copy", tcti_b).load_kek()


def test_a_unit_with_a_file_kek_keeps_it_and_no_tpm_means_the_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    FileKeySource(state / "kek.bin").load_kek()
    with software_tpm(tmp_path / "tpm") as tcti:
        assert isinstance(key_source_for(state / "kek.bin", tcti=tcti), FileKeySource)
    assert isinstance(key_source_for(tmp_path / "other" / "kek.bin", tcti=None), FileKeySource)


def test_no_tpm_behind_the_tcti_is_a_key_source_error(tmp_path: Path) -> None:
    with software_tpm(tmp_path / "tpm") as tcti:
        pass  # stopped: nothing listens there any more
    with pytest.raises(TpmError):
        TpmKeySource(tmp_path / "unit", tcti, timeout_s=10).load_kek()


def test_keys_source_forces_the_file_or_the_tpm(tmp_path: Path) -> None:
    """``[keys] source``: file never touches a TPM; tpm never falls back to a file."""
    with software_tpm(tmp_path / "tpm") as tcti:
        assert isinstance(key_source_for(tmp_path / "a" / "kek.bin", tcti, "file"), FileKeySource)
        forced = key_source_for(tmp_path / "b" / "kek.bin", tcti, "tpm")
        assert isinstance(forced, TpmKeySource) and len(forced.load_kek()) == 32
    no_tpm = key_source_for(tmp_path / "c" / "kek.bin", None, "tpm")  # no device here
    assert isinstance(no_tpm, TpmKeySource)
    with pytest.raises(TpmError):
        no_tpm.load_kek()
    assert not (tmp_path / "c" / "kek.bin").exists()
