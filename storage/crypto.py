"""Key hierarchy and field encryption. Pure functions over bytes; no database, no files.

::

    KEK (key source) --HKDF--> wrap key      (wraps per-day data keys, AES-256-GCM)
                     --HKDF--> audit signing (Ed25519 seed for audit checkpoints)
                     --HKDF--> audit pseudonym key (HMAC of search terms in audit details)
                     --HKDF--> key check value (detects a KEK that does not match the store)
                     --HKDF--> row MAC key (outbox and alert rows, storage.rowmac)
                     --HKDF--> external subkeys ("ext/<purpose>", e.g. the hotlist at rest)
    day key (random, one per UTC day) --> AES-256-GCM of fields and images of that day
                                      --HKDF--> blind-index key (HMAC of normalised plates)

A sealed field is ``0x01 || nonce(12) || ciphertext || tag(16)``. The associated data names the
table, column and the row's stable id, so a ciphertext copied into another row or column fails
authentication instead of decrypting to someone else's data.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import unicodedata
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from storage.errors import KeySourceError, TamperDetected

FORMAT_V1 = 0x01
NONCE_BYTES = 12
KEY_BYTES = 32
BLIND_INDEX_BYTES = 16
_PREFIX = bytes([FORMAT_V1])


def hkdf(key: bytes, info: str, length: int = KEY_BYTES) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info.encode()).derive(key)


def associated_data(table: str, column: str, row_id: str) -> bytes:
    return f"vigil/v1|{table}|{column}|{row_id}".encode()


def normalise_plate(text: str) -> str:
    """Upper-case letters and digits only: ``"ab-12 3"`` and ``"AB123"`` index the same.

    Look-alike folding (O/0, I/1) is the hotlist matcher's business, not the index's: folding
    here would make exact technician searches return other vehicles.
    """
    folded = unicodedata.normalize("NFKC", text).upper()
    return "".join(ch for ch in folded if ch.isalnum())


class Cipher(Protocol):
    """Seals and opens the fields of one UTC day and computes its blind index."""

    day: str

    def seal(self, plaintext: bytes, ad: bytes) -> bytes: ...

    def open(self, sealed: bytes, ad: bytes) -> bytes: ...

    def blind_index(self, plate_text: str) -> bytes: ...


class CipherSuite(Protocol):
    """How a store makes and wraps day keys and builds a day's cipher from a wrapped key.

    ``mode`` is written into a store when it is created; a store is only ever opened again
    under the same mode.
    """

    mode: str

    def wrap_new_day_key(self, day: str) -> bytes: ...

    def day_cipher(self, day: str, wrapped: bytes) -> Cipher: ...


class DayCipher:
    """AES-256-GCM and blind index under one day key. One AESGCM object is reused for every
    field of the day: building it (the key schedule) costs more than sealing a small field."""

    __slots__ = ("_aead", "_blind_key", "day")

    def __init__(self, day: str, day_key: bytes) -> None:
        if len(day_key) != KEY_BYTES:
            raise KeySourceError("day key has the wrong length")
        self.day = day
        self._aead = AESGCM(day_key)
        self._blind_key = hkdf(day_key, "vigil/blind-index/v1")

    def seal(self, plaintext: bytes, ad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return _PREFIX + nonce + self._aead.encrypt(nonce, plaintext, ad)

    def open(self, sealed: bytes, ad: bytes) -> bytes:
        if len(sealed) < 1 + NONCE_BYTES + 16 or sealed[0] != FORMAT_V1:
            raise TamperDetected("sealed field is truncated or has an unknown format")
        try:
            return self._aead.decrypt(sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :], ad)
        except InvalidTag as e:
            raise TamperDetected(
                "field failed authentication (edited, truncated, or moved from another row)"
            ) from e

    def blind_index(self, plate_text: str) -> bytes:
        digest = hmac.new(self._blind_key, normalise_plate(plate_text).encode(), hashlib.sha256)
        return digest.digest()[:BLIND_INDEX_BYTES]


class KeyHierarchy:
    """Everything derived from the KEK. Holds no reference to the KEK after construction."""

    def __init__(self, kek: bytes) -> None:
        if len(kek) != KEY_BYTES:
            raise KeySourceError(f"KEK must be {KEY_BYTES} bytes, got {len(kek)}")
        self._wrap = AESGCM(hkdf(kek, "vigil/day-key-wrap/v1"))
        self._pseudonym_key = hkdf(kek, "vigil/audit-pseudonym/v1")
        self.key_check = hkdf(kek, "vigil/key-check/v1", 16)
        self.signing_key = Ed25519PrivateKey.from_private_bytes(hkdf(kek, "vigil/audit-sign/v1"))
        self._ext_root = hkdf(kek, "vigil/ext-root/v1")
        self.row_mac_key = hkdf(kek, "vigil/row-mac/v1")

    def __repr__(self) -> str:
        return "KeyHierarchy(<redacted>)"

    def wrap_day_key(self, day: str, day_key: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return _PREFIX + nonce + self._wrap.encrypt(nonce, day_key, f"vigil/day-key|{day}".encode())

    def unwrap_day_key(self, day: str, wrapped: bytes) -> bytes:
        try:
            return self._wrap.decrypt(
                wrapped[1 : 1 + NONCE_BYTES],
                wrapped[1 + NONCE_BYTES :],
                f"vigil/day-key|{day}".encode(),
            )
        except (InvalidTag, ValueError) as e:
            raise TamperDetected(f"wrapped day key for {day} failed authentication") from e

    def pseudonym(self, value: str) -> str:
        """A stable, keyed, non-reversible tag for a value put in the audit log (search terms)."""
        mac = hmac.new(self._pseudonym_key, normalise_plate(value).encode(), hashlib.sha256)
        return mac.hexdigest()[:16]

    def derive(self, purpose: str) -> bytes:
        if not purpose or len(purpose) > 128:
            raise ValueError("purpose must be 1..128 characters")
        return hkdf(self._ext_root, f"vigil/ext/{purpose}")

    def public_key_bytes(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return self.signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def new_day_key() -> bytes:
    return os.urandom(KEY_BYTES)


class AesGcmSuite:
    """The store's cipher suite: random AES-256-GCM day keys wrapped under the KEK's wrap key."""

    mode = "encrypted"

    def __init__(self, keys: KeyHierarchy) -> None:
        self._keys = keys

    def wrap_new_day_key(self, day: str) -> bytes:
        key = new_day_key()
        wrapped = self._keys.wrap_day_key(day, key)
        del key
        return wrapped

    def day_cipher(self, day: str, wrapped: bytes) -> Cipher:
        return DayCipher(day, self._keys.unwrap_day_key(day, wrapped))

