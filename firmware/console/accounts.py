"""Per-person console accounts and the offline field-service login. Pure: bytes in, answers out.

**The account list** is a small text file the agency (or the vendor, for its field staff)
signs with its Ed25519 key; the unit holds only the public key (``[console] accounts_key``)::

    vigil-console-accounts/1
    version 4
    issued 2026-12-01T09:00:00+00:00
    account alice investigator scrypt$n=32768,r=8,p=3$<salt>$<key>
    account bob technician scrypt$n=32768,r=8,p=3$<salt>$<key>
    signature <base64 Ed25519 signature over every byte above, newlines included>

The signature is checked over the raw bytes before anything is parsed; then every line must be
well formed, names unique, roles from :class:`storage.roles.Role`, hashes at OWASP's scrypt
parameters (:meth:`ScryptParams.meets_policy`). One bad line refuses the whole list.

**Field service** when the unit has no link: at ``login:`` the technician types ``service``;
the unit shows a one-time challenge (:func:`new_challenge`: unit name and 96 random bits). The
vendor signs ``challenge|person|role`` with its key offline (:func:`sign_service_response`,
``vigil console-service-sign``) and reads back one line, ``person role signature``, which the
unit checks against ``[console] service_key`` (:func:`verify_service_response`). A challenge
is used once and expires with the prompt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firmware.console import auth
from firmware.errors import FirmwareError
from firmware.public_keys import PublicKeyError, load_ed25519_public_key
from firmware.public_keys import public_key_text as public_key_text  # the console tools' name
from storage.roles import LOGIN_NAME, RESERVED_LOGIN_NAMES, ROLES, Role

FORMAT = "vigil-console-accounts/1"
SERVICE_FORMAT = "vigil-service/1"
MAX_FILE_BYTES = 64 * 1024
MAX_ACCOUNTS = 200
NAME = LOGIN_NAME
RESERVED_NAMES = RESERVED_LOGIN_NAMES
#: The unit's own list (``vigil console-user``), in the state directory.
LOCAL_FILE = "console-accounts.local"
#: The store's version floor of each list (``"signed"``, ``"local"``): an older list put back
#: on the card is refused.
FLOOR_PREFIX = "console-accounts:"
#: What the MAC key of the unit's own list is derived for (``Store.derive_key``).
LOCAL_KEY_PURPOSE = "console-local-accounts"
_SIG_PREFIX = b"signature "
_MAC_PREFIX = b"mac "


class AccountError(FirmwareError, ValueError):
    """An account list or a service response that is refused; the message says why."""


@dataclass(frozen=True)
class Account:
    name: str
    role: Role
    password: auth.PasswordHash
    password_text: str = field(default="", repr=False)  # the hash string as listed


@dataclass(frozen=True)
class AccountList:
    version: int
    issued_at: datetime
    accounts: Mapping[str, Account]


def load_public_key(value: str) -> Ed25519PublicKey:
    """An Ed25519 public key as the config writes it (:mod:`firmware.public_keys`)."""
    try:
        return load_ed25519_public_key(value)
    except PublicKeyError as e:
        raise AccountError(f"unreadable Ed25519 public key: {e}") from e


# ---------------------------------------------------------------------------------- account list


def _body(version: int, accounts: Iterable[tuple[str, str, str]], issued_at: datetime) -> bytes:
    lines = [FORMAT, f"version {version}", f"issued {issued_at.isoformat()}"]
    lines += [f"account {name} {role} {hash_text}" for name, role, hash_text in accounts]
    return ("\n".join(lines) + "\n").encode("utf-8")


def sign_accounts(
    private_key: Ed25519PrivateKey,
    version: int,
    accounts: Iterable[tuple[str, str, str]],
    issued_at: datetime,
) -> bytes:
    """The signed file for ``(name, role, password hash)`` rows (agency or vendor side)."""
    body = _body(version, accounts, issued_at)
    return body + _SIG_PREFIX + base64.b64encode(private_key.sign(body)) + b"\n"


def seal_local_accounts(
    mac_key: bytes,
    version: int,
    accounts: Iterable[tuple[str, str, str]],
    issued_at: datetime,
) -> bytes:
    """The unit's own list (``vigil console-user``): the same body, closed by an HMAC-SHA256
    under a key derived from the unit's KEK instead of a signature."""
    body = _body(version, accounts, issued_at)
    return body + _MAC_PREFIX + base64.b64encode(_mac(mac_key, body)) + b"\n"


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, b"vigil-console-local-accounts\0" + body, hashlib.sha256).digest()


def _split_trailer(blob: bytes, prefix: bytes) -> tuple[bytes, bytes]:
    if len(blob) > MAX_FILE_BYTES:
        raise AccountError(f"account list larger than {MAX_FILE_BYTES} bytes")
    stripped = blob.rstrip(b"\n")
    cut = stripped.rfind(b"\n") + 1
    last = stripped[cut:]
    if not last.startswith(prefix):
        raise AccountError(f"account list is not signed (no final {prefix.decode().strip()} "
                           "line)")
    try:
        trailer = base64.b64decode(last[len(prefix):].strip(), validate=True)
    except (ValueError, binascii.Error) as e:
        raise AccountError("account list signature is not base64") from e
    return stripped[:cut], trailer


def parse_accounts(blob: bytes, public_key: Ed25519PublicKey) -> AccountList:
    """Verify, then parse, a signed account list (see the module docstring)."""
    body, sig = _split_trailer(blob, _SIG_PREFIX)
    try:
        public_key.verify(sig, body)
    except InvalidSignature as e:
        raise AccountError("account list signature does not verify with accounts_key") from e
    return _parse_body(body)


def parse_local_accounts(blob: bytes, mac_key: bytes) -> AccountList:
    """Verify, then parse, the unit's own list (:func:`seal_local_accounts`)."""
    body, mac = _split_trailer(blob, _MAC_PREFIX)
    if not hmac.compare_digest(mac, _mac(mac_key, body)):
        raise AccountError("local account list MAC does not verify (edited, or another unit's)")
    return _parse_body(body)


def _parse_body(body: bytes) -> AccountList:
    try:
        lines = body.decode("utf-8").split("\n")[:-1]
    except UnicodeDecodeError as e:
        raise AccountError("account list is not UTF-8") from e
    if len(lines) < 3 or lines[0] != FORMAT:
        raise AccountError(f"not a {FORMAT} document")
    version = _field(lines[1], "version")
    if not version.isdigit() or not 0 < int(version) < 2**53:
        raise AccountError("version must be a positive integer")
    try:
        issued = datetime.fromisoformat(_field(lines[2], "issued"))
    except ValueError as e:
        raise AccountError("issued must be an ISO 8601 time") from e
    if issued.tzinfo is None:
        raise AccountError("issued must carry a time zone")
    accounts: dict[str, Account] = {}
    for n, line in enumerate(lines[3:], start=4):
        account = _account(line, n)
        if account.name in accounts:
            raise AccountError(f"line {n}: account {account.name} listed twice")
        accounts[account.name] = account
        if len(accounts) > MAX_ACCOUNTS:
            raise AccountError(f"more than {MAX_ACCOUNTS} accounts")
    return AccountList(int(version), issued, accounts)


def rows_of(listed: AccountList) -> list[tuple[str, str, str]]:
    """``(name, role, hash)`` rows of a list, to write it again with a change."""
    return [(a.name, a.role.value, a.password_text) for a in listed.accounts.values()]


def _field(line: str, name: str) -> str:
    key, _, value = line.partition(" ")
    if key != name or not value:
        raise AccountError(f"expected a {name!r} line")
    return value


def _account(line: str, n: int) -> Account:
    words = line.split(" ")
    if len(words) != 4 or words[0] != "account":
        raise AccountError(f"line {n}: expected 'account NAME ROLE HASH'")
    _, name, role, hash_text = words
    if not NAME.fullmatch(name) or name in RESERVED_NAMES:
        raise AccountError(f"line {n}: bad account name")
    if role not in ROLES:
        raise AccountError(f"line {n}: role must be one of {', '.join(r.value for r in Role)}")
    try:
        hashed = auth.parse_hash(hash_text)
    except auth.PasswordHashError as e:
        raise AccountError(f"line {n}: {e}") from e
    if not hashed.params.meets_policy():
        raise AccountError(f"line {n}: password hash below OWASP's scrypt parameters "
                           "(make it again with `vigil console-passwd`)")
    return Account(name, Role(role), hashed, hash_text)


# ---------------------------------------------------------------------------------- field service


def new_challenge(unit: str, token: bytes | None = None) -> str:
    """A one-time challenge naming the unit (``token``: 12 random bytes unless given)."""
    unit_word = re.sub(r"[^A-Za-z0-9._-]", "_", unit)[:40] or "unit"
    nonce = base64.urlsafe_b64encode(token or secrets.token_bytes(12)).decode("ascii")
    return f"{SERVICE_FORMAT}:{unit_word}:{nonce}"


def _service_message(challenge: str, name: str, role: str) -> bytes:
    return f"{challenge}|{name}|{role}".encode()


def sign_service_response(
    private_key: Ed25519PrivateKey, challenge: str, name: str, role: Role
) -> str:
    """The line the technician types back (vendor side, offline)."""
    if not NAME.fullmatch(name) or name in RESERVED_NAMES:
        raise AccountError("bad person name (lower-case letters, digits, . _ -)")
    if not challenge.startswith(SERVICE_FORMAT + ":") or any(c.isspace() for c in challenge):
        raise AccountError("not a Vigil service challenge")
    sig = private_key.sign(_service_message(challenge, name, role.value))
    return f"{name} {role.value} {base64.b64encode(sig).decode('ascii')}"


def verify_service_response(
    challenge: str, response: str, public_key: Ed25519PublicKey
) -> tuple[str, Role]:
    """The person and role a response vouches for, or :class:`AccountError`."""
    words = response.split()
    if len(words) != 3:
        raise AccountError("expected 'NAME ROLE SIGNATURE'")
    name, role_text, sig_text = words
    if not NAME.fullmatch(name) or name in RESERVED_NAMES:
        raise AccountError("bad person name")
    if role_text not in ROLES:
        raise AccountError("unknown role")
    try:
        sig = base64.b64decode(sig_text, validate=True)
        public_key.verify(sig, _service_message(challenge, name, role_text))
    except (ValueError, binascii.Error, InvalidSignature) as e:
        raise AccountError("the response is not signed by the vendor for this challenge") from e
    return name, Role(role_text)
