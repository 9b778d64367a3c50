"""Ed25519 public keys as they are written in the config: one rule for every key the unit trusts.

The agency's hotlist key, the console's account-list key and the vendor's field-service key are
each set as either the key itself (base64 of its 32 raw bytes, as :func:`public_key_text` and
``vigil console-keygen`` print it) or the path of a file holding it (PEM, the raw 32 bytes, or
that base64 text). Base64 can begin with ``/``, so a value is first tried as a key: 32 bytes'
worth of valid base64 is always the key, never a path (one key in 64 starts with ``/``, and
the console once refused such a key as a missing file).
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firmware.errors import FirmwareError

# A config value longer than this is not a path (and not worth a stat).
_MAX_PATH = 4096
_RAW_LEN = 32


class PublicKeyError(FirmwareError, ValueError):
    """A public key that cannot be read; the message says why, never the file's bytes."""


def load_ed25519_public_key(value: str) -> Ed25519PublicKey:
    """The key ``value`` is, or the key in the file ``value`` names."""
    text = value.strip()
    if not text:
        raise PublicKeyError("no public key given")
    raw = _raw_from_base64(text.encode("ascii", "replace"))
    if raw is not None:
        return Ed25519PublicKey.from_public_bytes(raw)
    path = Path(text)
    if len(text) > _MAX_PATH or not path.is_file():
        raise PublicKeyError(
            "not base64 of a 32-byte Ed25519 key, and no such file"
            + (f": {text}" if len(text) <= 200 else "")
        )
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PublicKeyError(f"{path}: {e.strerror or e}") from e
    return _from_file_bytes(data, path)


def _from_file_bytes(data: bytes, path: Path) -> Ed25519PublicKey:
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as e:
            raise PublicKeyError(f"{path}: unreadable PEM public key: {e}") from e
        if not isinstance(key, Ed25519PublicKey):
            raise PublicKeyError(f"{path} is not an Ed25519 public key")
        return key
    if len(data) == _RAW_LEN:
        return Ed25519PublicKey.from_public_bytes(data)
    raw = _raw_from_base64(data.strip())
    if raw is None:
        raise PublicKeyError(f"{path} holds neither PEM, 32 raw bytes nor base64 of them")
    return Ed25519PublicKey.from_public_bytes(raw)


def _raw_from_base64(data: bytes) -> bytes | None:
    try:
        raw = base64.b64decode(data, validate=True)
    except (ValueError, binascii.Error):
        return None
    return raw if len(raw) == _RAW_LEN else None


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The base64 form :func:`load_ed25519_public_key` reads (what goes into the config)."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")
