"""Console passwords (scrypt) and the login lockout. No I/O: bytes and times in, answers out.

Hash string format (one line, safe in TOML)::

    scrypt$n=32768,r=8,p=1$<salt, base64>$<key, base64>

The parameters travel with the hash so they can be raised later without invalidating images that
were prepared with older ones. Verification bounds the parameters it accepts: a hash string comes
from a config file, and a crafted ``n`` must not make a login attempt allocate gigabytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from firmware.errors import FirmwareError

SCHEME = "scrypt"

#: 2**15 x r=8 needs 32 MiB per attempt (about 0.26 s on the 2-core x86 development machine;
#: not yet measured on a Pi): slow for an offline guesser who copied the config file, and only
#: paid once per login on the unit.
DEFAULT_N = 2**15
DEFAULT_R = 8
DEFAULT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32

# What verification accepts (memory = 128 * n * r * p bytes; the cap is 256 MiB).
_MAX_N = 2**20
_MAX_R = 32
_MAX_P = 16
_MAX_MEM = 256 * 1024 * 1024

#: Longest password accepted, in bytes: scrypt hashes anything, but a serial line is no place for
#: a megabyte "password", and an upper bound keeps the cost of one attempt fixed.
MAX_PASSWORD_BYTES = 1024


class PasswordHashError(FirmwareError, ValueError):
    """A password hash string is malformed or uses parameters outside the accepted bounds."""


@dataclass(frozen=True)
class ScryptParams:
    n: int = DEFAULT_N
    r: int = DEFAULT_R
    p: int = DEFAULT_P

    def check(self) -> None:
        if self.n < 2 or self.n & (self.n - 1) or self.n > _MAX_N:
            raise PasswordHashError(f"scrypt n must be a power of two in 2..{_MAX_N}")
        if not 1 <= self.r <= _MAX_R or not 1 <= self.p <= _MAX_P:
            raise PasswordHashError(f"scrypt r must be 1..{_MAX_R} and p 1..{_MAX_P}")
        if self.memory_bytes() > _MAX_MEM:
            raise PasswordHashError("scrypt parameters need more than 256 MiB")

    def memory_bytes(self) -> int:
        return 128 * self.n * self.r * self.p


@dataclass(frozen=True)
class PasswordHash:
    params: ScryptParams
    salt: bytes
    key: bytes

    def __repr__(self) -> str:
        return f"PasswordHash(params={self.params!r}, <redacted>)"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _derive(password: bytes, salt: bytes, params: ScryptParams, length: int) -> bytes:
    return hashlib.scrypt(
        password, salt=salt, n=params.n, r=params.r, p=params.p, dklen=length,
        maxmem=params.memory_bytes() + 1024 * 1024,
    )


def _encode_password(password: str) -> bytes:
    data = password.encode("utf-8")
    if not data:
        raise PasswordHashError("the password must not be empty")
    if len(data) > MAX_PASSWORD_BYTES:
        raise PasswordHashError(f"the password must be at most {MAX_PASSWORD_BYTES} bytes")
    return data


def hash_password(
    password: str, params: ScryptParams | None = None, salt: bytes | None = None
) -> str:
    """A new salted hash string for ``password`` (the salt is random unless given)."""
    params = params or ScryptParams()
    params.check()
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    key = _derive(_encode_password(password), salt, params, KEY_BYTES)
    return f"{SCHEME}$n={params.n},r={params.r},p={params.p}${_b64(salt)}${_b64(key)}"


def parse_hash(text: str) -> PasswordHash:
    """Parse and bound-check a hash string; :class:`PasswordHashError` says what is wrong
    (never echoing the string, which is a secret)."""
    parts = text.strip().split("$")
    if len(parts) != 4 or parts[0] != SCHEME:
        raise PasswordHashError(f"not a {SCHEME} hash (expected {SCHEME}$n=..,r=..,p=..$salt$key)")
    fields: dict[str, int] = {}
    for item in parts[1].split(","):
        name, sep, value = item.partition("=")
        if not sep or name not in ("n", "r", "p") or name in fields or not value.isdigit():
            raise PasswordHashError("malformed scrypt parameters")
        fields[name] = int(value)
    if set(fields) != {"n", "r", "p"}:
        raise PasswordHashError("scrypt parameters n, r and p are all required")
    params = ScryptParams(**fields)
    params.check()
    try:
        salt = _unb64(parts[2])
        key = _unb64(parts[3])
    except ValueError as e:
        raise PasswordHashError("salt or key is not valid base64") from e
    if len(salt) < 8 or not 16 <= len(key) <= 64:
        raise PasswordHashError("salt must be at least 8 bytes and the key 16..64 bytes")
    return PasswordHash(params, salt, key)


def verify_password(password: str, stored: PasswordHash) -> bool:
    """True when ``password`` matches. Constant-time comparison of the derived keys; an over-long
    or empty password is simply wrong (still costing one derivation, so timing says nothing)."""
    data = password.encode("utf-8", "surrogateescape")
    ok_length = 0 < len(data) <= MAX_PASSWORD_BYTES
    if not ok_length:
        data = b"\x00"
    key = _derive(data, stored.salt, stored.params, len(stored.key))
    return hmac.compare_digest(key, stored.key) and ok_length


def burn_one_attempt(stored: PasswordHash | None) -> None:
    """Spend what a verification costs, for an unknown user name: answering a bad user name
    faster than a bad password would tell a guesser which names exist."""
    params = stored.params if stored is not None else ScryptParams()
    salt = stored.salt if stored is not None else b"\x00" * SALT_BYTES
    _derive(b"\x00", salt, params, KEY_BYTES)


class LoginThrottle:
    """Lockout after ``max_failures`` consecutive failures, for ``lockout_s`` seconds.

    Times are monotonic seconds from the injected clock. Kept by the console across sessions,
    so hanging up and reconnecting does not reset the count.
    """

    def __init__(self, max_failures: int, lockout_s: float) -> None:
        if max_failures < 1 or lockout_s < 0:
            raise ValueError("max_failures must be >= 1 and lockout_s >= 0")
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self.failures = 0
        self._locked_until: float | None = None

    def locked_for(self, now: float) -> float:
        """Seconds of lockout left (0.0 when logins are allowed). The count restarts when a
        lockout ends, so each new lockout needs ``max_failures`` new failures."""
        if self._locked_until is None:
            return 0.0
        left = self._locked_until - now
        if left <= 0:
            self._locked_until = None
            self.failures = 0
            return 0.0
        return left

    def record_failure(self, now: float) -> bool:
        """Count one failure; True when this failure starts a lockout."""
        self.failures += 1
        if self.failures >= self.max_failures:
            self._locked_until = now + self.lockout_s
            return True
        return False

    def record_success(self) -> None:
        self.failures = 0
        self._locked_until = None
