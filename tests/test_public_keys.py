"""One rule for the Ed25519 public keys in the config (hotlist agency, console accounts)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from firmware.console import accounts
from firmware.link import hotlists
from firmware.link.hotlist_doc import HotlistSignatureError
from firmware.public_keys import PublicKeyError, load_ed25519_public_key, public_key_text

KEY = Ed25519PrivateKey.generate()
RAW = KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
PEM = KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                    serialization.PublicFormat.SubjectPublicKeyInfo)


def raw_of(value: str) -> bytes:
    return load_ed25519_public_key(value).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_every_written_form_reads_the_same_key(tmp_path: Path) -> None:
    files = {"pem": PEM, "raw": RAW, "b64": base64.b64encode(RAW) + b"\n"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    values = [public_key_text(KEY), f"  {public_key_text(KEY.public_key())}\n",
              *(str(tmp_path / n) for n in files)]
    assert {raw_of(v) for v in values} == {RAW}


def test_base64_that_looks_like_a_path_is_the_key(tmp_path: Path) -> None:
    raw = b"\xfc" + RAW[1:]
    text = base64.b64encode(raw).decode()
    assert text.startswith("/")
    assert raw_of(text) == raw


@pytest.mark.parametrize("value", ["", "   ", "bm90IGEga2V5", "/no/such/key.pem",
                                   base64.b64encode(b"x" * 31).decode(), "é" * 10])
def test_refused_values_raise_the_one_error(value: str) -> None:
    with pytest.raises(PublicKeyError):
        load_ed25519_public_key(value)


def test_a_file_of_something_else_is_refused_without_its_bytes_in_the_message(
        tmp_path: Path) -> None:
    other = tmp_path / "x25519.pem"
    other.write_bytes(X25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    junk = tmp_path / "junk"
    junk.write_bytes(b"secret-looking junk " * 3)
    with pytest.raises(PublicKeyError, match="not an Ed25519"):
        load_ed25519_public_key(str(other))
    with pytest.raises(PublicKeyError) as e:
        load_ed25519_public_key(str(junk))
    assert "secret-looking" not in str(e.value)


def test_callers_keep_their_own_error_types(tmp_path: Path) -> None:
    with pytest.raises(accounts.AccountError):
        accounts.load_public_key("/no/such/key.pem")
    with pytest.raises(HotlistSignatureError, match="not set"):
        hotlists.load_public_key("")
    with pytest.raises(HotlistSignatureError):
        hotlists.load_public_key("/no/such/key.pem")
    raw_file = tmp_path / "agency.key"
    raw_file.write_bytes(RAW)
    # The console now reads the file forms the hotlist loader always did.
    assert accounts.load_public_key(str(raw_file)).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw) == RAW
