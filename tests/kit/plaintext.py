"""A cipher suite that does not encrypt, for measuring what encryption costs (bench/).

``Store.open(..., cipher_suite=PlainSuite())`` runs the same store code with an identity
"cipher" and the normalised plate as its "blind index". The store records the suite's mode
when it creates the file, so a plaintext store is refused by a normal (encrypted) open.
"""

from __future__ import annotations

from storage.crypto import Cipher, normalise_plate


class PlainDayCipher:
    __slots__ = ("day",)

    def __init__(self, day: str) -> None:
        self.day = day

    def seal(self, plaintext: bytes, ad: bytes) -> bytes:
        return b"\x00" + plaintext

    def open(self, sealed: bytes, ad: bytes) -> bytes:
        return sealed[1:]

    def blind_index(self, plate_text: str) -> bytes:
        return normalise_plate(plate_text).encode()


class PlainSuite:
    mode = "plaintext-benchmark"

    def wrap_new_day_key(self, day: str) -> bytes:
        return b""

    def day_cipher(self, day: str, wrapped: bytes) -> Cipher:
        return PlainDayCipher(day)
