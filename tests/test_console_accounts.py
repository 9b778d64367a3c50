"""The signed console account list and the field-service response: round trips, every refusal,
and fuzzing (nothing but :class:`AccountError` ever comes out of the parsers)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.console import accounts
from firmware.console.accounts import AccountError, parse_accounts, sign_accounts
from firmware.console.auth import ScryptParams, hash_password
from storage.roles import Role

KEY = Ed25519PrivateKey.generate()
PUB = KEY.public_key()
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
STRONG = hash_password("a long pass phrase")
WEAK = hash_password("a long pass phrase", ScryptParams(n=2**10))


def _signed(rows: list[tuple[str, str, str]], version: int = 3) -> bytes:
    return sign_accounts(KEY, version, rows, T0)


def test_round_trip() -> None:
    got = parse_accounts(_signed([("alice", "investigator", STRONG), ("bob", "technician",
                                                                       STRONG)]), PUB)
    assert got.version == 3 and got.issued_at == T0
    assert {n: a.role for n, a in got.accounts.items()} == {
        "alice": Role.INVESTIGATOR, "bob": Role.TECHNICIAN}


@pytest.mark.parametrize(("rows", "why"), [
    ([("alice", "operator", STRONG)], "role must be one of"),
    ([("alice", "investigator", WEAK)], "OWASP"),
    ([("alice", "investigator", "scrypt$junk")], "line 4"),
    ([("Alice", "investigator", STRONG)], "bad account name"),
    ([("service", "admin", STRONG)], "bad account name"),
    ([("alice", "admin", STRONG), ("alice", "technician", STRONG)], "listed twice"),
])
def test_bad_rows_refuse_the_whole_list(rows: list[tuple[str, str, str]], why: str) -> None:
    with pytest.raises(AccountError, match=why):
        parse_accounts(_signed(rows), PUB)


def test_unsigned_edited_or_foreign_lists_are_refused() -> None:
    blob = _signed([("bob", "technician", STRONG)])
    with pytest.raises(AccountError, match="not signed"):
        parse_accounts(blob.rsplit(b"signature", 1)[0], PUB)
    with pytest.raises(AccountError, match="does not verify"):
        parse_accounts(blob.replace(b"bob technician", b"bob admin"), PUB)
    with pytest.raises(AccountError, match="does not verify"):
        parse_accounts(blob, Ed25519PrivateKey.generate().public_key())
    with pytest.raises(AccountError, match="larger than"):
        parse_accounts(b"x" * (accounts.MAX_FILE_BYTES + 1), PUB)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_any_bytes_are_refused_cleanly(blob: bytes) -> None:
    with pytest.raises(AccountError):
        parse_accounts(blob, PUB)


_LINE = st.one_of(
    st.text(max_size=80),
    st.builds(lambda n, r, h: f"account {n} {r} {h}",
              st.sampled_from(["alice", "b", "bob", "x" * 40, "unknown", "ç"]),
              st.sampled_from(["admin", "technician", "root", ""]),
              st.sampled_from([STRONG, WEAK, "scrypt$n=1024,r=8,p=1$$", ""])),
    st.sampled_from(["version 1", "version -1", "version 1e9", "issued 2026-12-01",
                     "issued 2026-12-01T00:00:00+00:00", accounts.FORMAT]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINE, max_size=8))
def test_fuzz_signed_bodies_parse_or_refuse_cleanly(lines: list[str]) -> None:
    """Past a good signature the parser still meets only well-formed input or says no."""
    body = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
    blob = body + b"signature " + base64.b64encode(KEY.sign(body)) + b"\n"
    try:
        got = parse_accounts(blob, PUB)
    except AccountError:
        return
    assert all(accounts.NAME.fullmatch(n) for n in got.accounts)


def test_service_response_binds_challenge_person_and_role() -> None:
    c = accounts.new_challenge("cam 1/north", token=b"\x00" * 12)
    assert c == "vigil-service/1:cam_1_north:AAAAAAAAAAAAAAAA"
    line = accounts.sign_service_response(KEY, c, "sam", Role.TECHNICIAN)
    assert accounts.verify_service_response(c, line, PUB) == ("sam", Role.TECHNICIAN)
    name, role, sig = line.split()
    for bad in (f"{name} admin {sig}", f"eve {role} {sig}", f"{name} {role}", "",
                f"{name} {role} {sig}!"):
        with pytest.raises(AccountError):
            accounts.verify_service_response(c, bad, PUB)
    with pytest.raises(AccountError):
        accounts.verify_service_response(accounts.new_challenge("cam 1/north"), line, PUB)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_service_responses_are_refused_cleanly(text: str) -> None:
    with pytest.raises(AccountError):
        accounts.verify_service_response("vigil-service/1:u:AAAA", text, PUB)


def test_a_base64_key_that_begins_with_a_slash_is_a_key_not_a_path(tmp_path) -> None:
    """One Ed25519 key in 64 has base64 starting with "/"; it was read as a file path."""
    from cryptography.hazmat.primitives import serialization

    raw = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    raw = b"\xfc" + raw[1:]  # base64 begins with "/"
    text = base64.b64encode(raw).decode()
    assert text.startswith("/")
    key = accounts.load_public_key(text)
    assert key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == raw
    pem = tmp_path / "agency.pem"
    pem.write_bytes(key.public_bytes(serialization.Encoding.PEM,
                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    assert accounts.load_public_key(str(pem)).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw) == raw
    with pytest.raises(AccountError):
        accounts.load_public_key(str(tmp_path / "missing.pem"))
