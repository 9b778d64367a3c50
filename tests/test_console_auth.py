"""Console password hashing and lockout: pure functions, driven directly (the lockout's file
too)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from firmware.console.auth import (
    LoginThrottle,
    PasswordHashError,
    ScryptParams,
    ThrottleState,
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
    a, b = hash_password("pw-1234-5678", FAST), hash_password("pw-1234-5678", FAST)
    assert a != b
    assert "pw-1234-5678" not in a
    assert "<redacted>" in repr(parse_hash(a))


def test_default_parameters_are_owasp_and_encoded() -> None:
    h = hash_password("secret-pass-phrase")
    assert h.split("$")[1] == "n=32768,r=8,p=3"
    assert parse_hash(h).params.meets_policy()
    assert verify_password("secret-pass-phrase", parse_hash(h))
    assert not ScryptParams(n=2**15, r=8, p=1).meets_policy()  # the old default
    assert ScryptParams(n=2**17, r=8, p=1).meets_policy()
    assert not ScryptParams(n=2**17, r=4, p=2).meets_policy()


@pytest.mark.parametrize("password", ["x", "eleven-char", " " * 12])
def test_short_passwords_get_no_hash(password: str) -> None:
    with pytest.raises(PasswordHashError, match=r"at least 12|only spaces"):
        hash_password(password, FAST)


def test_same_salt_same_hash() -> None:
    pw = "abc-def-ghi-jkl"
    assert hash_password(pw, FAST, salt=b"s" * 16) == hash_password(pw, FAST, salt=b"s" * 16)


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


T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _fail(t: LoginThrottle, now: float) -> bool:
    t.begin_attempt()
    return t.record_failure(now, T0 + timedelta(seconds=now))


def test_throttle_locks_after_max_failures_and_unlocks_after_lockout() -> None:
    t = LoginThrottle(max_failures=3, lockout_s=60.0)
    assert t.locked_for(0.0) == 0.0
    assert not _fail(t, 1.0)
    assert not _fail(t, 2.0)
    assert _fail(t, 3.0)
    assert t.locked_for(3.0) == pytest.approx(60.0)
    assert t.locked_for(62.9) == pytest.approx(0.1)
    assert t.locked_for(63.0) == 0.0
    # A fresh lockout needs max_failures fresh failures, and lasts twice as long.
    assert not _fail(t, 64.0)
    assert t.locked_for(64.0) == 0.0
    _fail(t, 65.0)
    assert _fail(t, 66.0)
    assert t.locked_for(66.0) == pytest.approx(120.0)


def test_backoff_doubles_up_to_a_day() -> None:
    t = LoginThrottle(max_failures=1, lockout_s=300.0)
    assert [t.duration(n) for n in (1, 2, 3, 4)] == [300.0, 600.0, 1200.0, 2400.0]
    assert t.duration(40) == 86400.0


def test_success_resets_the_count() -> None:
    t = LoginThrottle(max_failures=2, lockout_s=10.0)
    _fail(t, 0.0)
    t.record_success()
    assert not _fail(t, 1.0)
    assert t.locked_for(1.0) == 0.0


def test_every_attempt_is_saved_before_its_password_is_checked() -> None:
    """A power cut while the password is checked must not undo the attempt."""
    saved: list[ThrottleState] = []
    t = LoginThrottle(max_failures=5, lockout_s=60.0, persist=saved.append)
    t.begin_attempt()
    assert saved[-1].failures == 1  # before any answer is known
    t.record_success()
    assert saved[-1] == ThrottleState()


def test_persisted_lockout_resumes_and_a_clock_set_back_cannot_lengthen_it() -> None:
    state = ThrottleState(failures=3, lockouts=1, locked_until=T0 + timedelta(seconds=40))
    t = LoginThrottle(3, 60.0, state=state, now_utc=T0, now=500.0)
    assert t.locked_for(500.0) == pytest.approx(40.0)
    # The wall clock was set back a year: the lockout is still at most its own length.
    t = LoginThrottle(3, 60.0, state=state, now_utc=T0 - timedelta(days=365), now=0.0)
    assert t.locked_for(0.0) == pytest.approx(60.0)
    # Over by the time the unit is back up.
    t = LoginThrottle(3, 60.0, state=state, now_utc=T0 + timedelta(seconds=41), now=0.0)
    assert t.locked_for(0.0) == 0.0 and t.lockouts == 1  # the next lockout is longer
