"""Console passwords (scrypt) and the login lockout. No I/O: bytes and times in, answers out
(the lockout's state is handed to an injected ``persist`` function, which the console points at
a file).

Hash string format (one line, safe in TOML)::

    scrypt$n=32768,r=8,p=3$<salt, base64>$<key, base64>

The parameters travel with the hash so they can be raised later without invalidating images that
were prepared with older ones. Verification bounds the parameters it accepts: a hash string comes
from a config file, and a crafted ``n`` must not make a login attempt allocate gigabytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from firmware.errors import FirmwareError

SCHEME = "scrypt"

#: One of OWASP's equivalent scrypt rows (Password Storage Cheat Sheet, 2025: N=2^17 r=8 p=1,
#: 2^16/8/2, 2^15/8/3, 2^14/8/5, 2^13/8/10). 2^15 x r=8 x p=3 keeps the memory of one attempt
#: at 32 MiB (the daemon runs under MemoryMax=300M) and costs about 0.2 s on the 2-core x86
#: development machine (not yet measured on a Pi): slow for an offline guesser who copied the
#: account file, and paid once per login on the unit.
DEFAULT_N = 2**15
DEFAULT_R = 8
DEFAULT_P = 3
#: The OWASP rows as (n, p) at r=8: a hash meets the policy when it is at least one of them.
OWASP_ROWS = ((2**17, 1), (2**16, 2), (2**15, 3), (2**14, 5), (2**13, 10))
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
#: Shortest password a new hash is made for, in characters (NIST SP 800-63B asks at least 8;
#: a unit at the roadside can be attacked at leisure, so 12).
MIN_PASSWORD_CHARS = 12
#: The longest lockout, however many lockouts came in a row (seconds).
MAX_LOCKOUT_S = 86400.0


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

    def meets_policy(self) -> bool:
        """At least one of OWASP's scrypt rows (:data:`OWASP_ROWS`)."""
        return self.r >= 8 and any(self.n >= n and self.p >= p for n, p in OWASP_ROWS)


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


def password_problem(password: str) -> str | None:
    """Why ``password`` may not be given a new hash, or None."""
    if len(password) < MIN_PASSWORD_CHARS:
        return f"the password must be at least {MIN_PASSWORD_CHARS} characters"
    if len(password.encode("utf-8", "surrogateescape")) > MAX_PASSWORD_BYTES:
        return f"the password must be at most {MAX_PASSWORD_BYTES} bytes"
    if not password.strip():
        return "the password must not be only spaces"
    return None


def _encode_password(password: str) -> bytes:
    problem = password_problem(password)
    if problem is not None:
        raise PasswordHashError(problem)
    return password.encode("utf-8")


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


@dataclass(frozen=True)
class ThrottleState:
    """What the lockout must remember across restarts and power cuts."""

    failures: int = 0  # consecutive failed attempts (an attempt counts before it is checked)
    lockouts: int = 0  # lockouts in a row since the last successful login
    locked_until: datetime | None = None  # UTC end of the current lockout


class LoginThrottle:
    """Lockout after ``max_failures`` consecutive failures, with exponential backoff.

    The n-th lockout in a row lasts ``lockout_s * 2**(n-1)`` seconds (at most
    :data:`MAX_LOCKOUT_S`, or ``lockout_s`` if that is longer); a successful login starts over.
    An attempt is counted (and ``persist`` called) *before* its password is checked, so cutting
    the power while the answer is computed does not save the attempt. Deadlines run on the
    monotonic clock while the process lives; across a restart the persisted UTC end is used, and
    a remaining time longer than the lockout itself (the clock was set back) is cut to it.
    """

    def __init__(
        self,
        max_failures: int,
        lockout_s: float,
        *,
        state: ThrottleState | None = None,
        persist: Callable[[ThrottleState], None] | None = None,
        now_utc: datetime | None = None,
        now: float = 0.0,
    ) -> None:
        if max_failures < 1 or not lockout_s >= 0:
            raise ValueError("max_failures must be >= 1 and lockout_s >= 0")
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self._persist = persist
        state = state or ThrottleState()
        self.failures = max(0, state.failures)
        self.lockouts = max(0, state.lockouts)
        self._locked_until: float | None = None
        self._locked_until_utc: datetime | None = None
        if state.locked_until is not None and now_utc is not None:
            left = (state.locked_until - now_utc).total_seconds()
            left = min(left, self.duration(max(self.lockouts, 1)))
            if left > 0:
                self._locked_until = now + left
                self._locked_until_utc = now_utc + timedelta(seconds=left)

    def duration(self, lockouts: int) -> float:
        """Seconds the ``lockouts``-th lockout in a row lasts."""
        cap = max(MAX_LOCKOUT_S, self.lockout_s)
        return float(min(cap, self.lockout_s * 2.0 ** min(max(lockouts - 1, 0), 32)))

    def state(self) -> ThrottleState:
        return ThrottleState(self.failures, self.lockouts, self._locked_until_utc)

    def _save(self) -> None:
        if self._persist is not None:
            self._persist(self.state())

    def locked_for(self, now: float) -> float:
        """Seconds of lockout left (0.0 when logins are allowed). The count restarts when a
        lockout ends, so each new lockout needs ``max_failures`` new failures."""
        if self._locked_until is None:
            return 0.0
        left = self._locked_until - now
        if left <= 0:
            self._locked_until = None
            self._locked_until_utc = None
            self.failures = 0
            return 0.0
        return left

    def begin_attempt(self) -> None:
        """Count an attempt as failed before its password is checked (saved at once)."""
        self.failures += 1
        self._save()

    def record_failure(self, now: float, now_utc: datetime) -> bool:
        """The attempt begun with :meth:`begin_attempt` failed; True when it starts a lockout
        (which is saved before this returns)."""
        if self.failures >= self.max_failures:
            self.lockouts += 1
            left = self.duration(self.lockouts)
            self._locked_until = now + left
            self._locked_until_utc = now_utc + timedelta(seconds=left)
            self._save()
            return True
        return False

    def current_lockout_s(self) -> float:
        return self.duration(self.lockouts)

    def record_success(self) -> None:
        self.failures = 0
        self.lockouts = 0
        self._locked_until = None
        self._locked_until_utc = None
        self._save()
