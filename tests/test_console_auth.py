"""Console password hashing and lockout: pure functions, driven directly."""

from __future__ import annotations

import pytest

from firmware.console.auth import (
    LoginThrottle,
    PasswordHashError,
    ScryptParams,
    hash_password,
    parse_hash,
    verify_password,
)

FAST = ScryptParams(n=2**10, r=8, p=1)


def test_hash_round_trip_and_wrong_password() -> None:
    h = hash_password("correct horse", FAST)
    assert h.startswith("scrypt$n=1024,r=8,p=1$")
    stored = parse_hash(h)
    assert verify_password("correct horse", stored)
    assert not verify_password("correct hors", stored)
    assert not verify_password("", stored)
    assert not verify_password("x" * 5000, stored)


def test_salt_is_random_and_hash_has_no_password() -> None:
    a, b = hash_password("pw-1234", FAST), hash_password("pw-1234", FAST)
    assert a != b
    assert "pw-1234" not in a
    assert "<redacted>" in repr(parse_hash(a))


def test_default_parameters_are_encoded() -> None:
    h = hash_password("secret-pass")
    assert h.split("$")[1] == "n=32768,r=8,p=1"
    assert verify_password("secret-pass", parse_hash(h))


def test_same_salt_same_hash() -> None:
    assert hash_password("abc", FAST, salt=b"s" * 16) == hash_password("abc", FAST, salt=b"s" * 16)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "bcrypt$2b$12$abc",
        "scrypt$n=1024,r=8$c2FsdHNhbHQ$" + "A" * 43,
        "scrypt$n=1000,r=8,p=1$c2FsdHNhbHQ$" + "A" * 43,  # not a power of two
        "scrypt$n=4194304,r=8,p=1$c2FsdHNhbHQ$" + "A" * 43,  # 4 GiB: refused, not allocated
        "scrypt$n=1024,r=8,p=1$!!!$" + "A" * 43,
        "scrypt$n=1024,r=8,p=1$c2FsdHNhbHQ$AAAA",  # key too short
        "scrypt$n=1024,r=8,p=1,p=2$c2FsdHNhbHQ$" + "A" * 43,
    ],
)
def test_malformed_hashes_are_rejected(text: str) -> None:
    with pytest.raises(PasswordHashError) as e:
        parse_hash(text)
    assert isinstance(e.value, ValueError)


def test_empty_or_huge_password_cannot_be_hashed() -> None:
    with pytest.raises(PasswordHashError):
        hash_password("", FAST)
    with pytest.raises(PasswordHashError):
        hash_password("x" * 2000, FAST)


def test_throttle_locks_after_max_failures_and_unlocks_after_lockout() -> None:
    t = LoginThrottle(max_failures=3, lockout_s=60.0)
    assert t.locked_for(0.0) == 0.0
    assert not t.record_failure(1.0)
    assert not t.record_failure(2.0)
    assert t.record_failure(3.0)
    assert t.locked_for(3.0) == pytest.approx(60.0)
    assert t.locked_for(62.9) == pytest.approx(0.1)
    assert t.locked_for(63.0) == 0.0
    # A fresh lockout needs max_failures fresh failures.
    assert not t.record_failure(64.0)
    assert t.locked_for(64.0) == 0.0


def test_success_resets_the_count() -> None:
    t = LoginThrottle(max_failures=2, lockout_s=10.0)
    t.record_failure(0.0)
    t.record_success()
    assert not t.record_failure(1.0)
    assert t.locked_for(1.0) == 0.0
