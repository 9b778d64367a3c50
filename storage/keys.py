"""Sources of the device key-encryption key (KEK).

The KEK never leaves this module's callers except through :class:`storage.crypto.KeyHierarchy`,
which derives every working key from it. It is never logged or put in an exception message.
A TPM or secure-element source implements the same one-method protocol.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path
from typing import Protocol

from drivers import files
from storage.errors import InsecureKeyFile, KeySourceError

log = logging.getLogger(__name__)

KEK_BYTES = 32


class KeySource(Protocol):
    def load_kek(self) -> bytes:
        """Return the 32-byte KEK, creating it if this source does that."""

    def describe(self) -> str:
        """A log-safe description of where the key lives (never the key)."""


class MemoryKeySource:
    """A KEK held in memory (tests, benchmarks). Random unless given."""

    def __init__(self, kek: bytes | None = None) -> None:
        if kek is not None and len(kek) != KEK_BYTES:
            raise KeySourceError(f"KEK must be {KEK_BYTES} bytes")
        self._kek = kek if kek is not None else secrets.token_bytes(KEK_BYTES)

    def load_kek(self) -> bytes:
        return self._kek

    def describe(self) -> str:
        return "memory"

    def __repr__(self) -> str:
        return "MemoryKeySource(<redacted>)"


class FileKeySource:
    """A KEK in a file that only its owner may read or write (mode 0600).

    On first use the file is created atomically with ``O_EXCL`` and mode 0600 from the start, so
    there is no window where it is readable by others. A file with any group/other permission
    bit is refused rather than "fixed": someone changed it, and the key may already be copied.
    """

    def __init__(self, path: Path) -> None:
        self._path = Path(path)

    def describe(self) -> str:
        return f"file:{self._path}"

    def __repr__(self) -> str:
        return f"FileKeySource({str(self._path)!r})"

    def load_kek(self) -> bytes:
        try:
            return self._read()
        except FileNotFoundError:
            pass
        self._create()
        return self._read()

    def _read(self) -> bytes:
        fd = os.open(self._path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise KeySourceError(f"key file {self._path} is not a regular file")
            if st.st_mode & 0o077:
                raise InsecureKeyFile(
                    f"key file {self._path} has mode {stat.S_IMODE(st.st_mode):04o}; it must be "
                    "0600 (owner only). Refusing to use a key others may have read: check who "
                    "changed it, then rotate the key or restore the mode with chmod 600."
                )
            if st.st_uid != os.geteuid():
                raise InsecureKeyFile(
                    f"key file {self._path} is owned by uid {st.st_uid}, not by this process "
                    f"(uid {os.geteuid()})"
                )
            data = os.read(fd, KEK_BYTES + 1)
        finally:
            os.close(fd)
        if len(data) != KEK_BYTES:
            raise KeySourceError(
                f"key file {self._path} holds {len(data)} bytes, expected exactly {KEK_BYTES}"
            )
        return data

    def _create(self) -> None:
        tmp = files.write_temp(self._path, secrets.token_bytes(KEK_BYTES), 0o600)
        try:
            # link() fails if another process created the key meanwhile: keep theirs.
            os.link(tmp, self._path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        files.fsync_dir(self._path.parent)
        log.info("created device KEK", extra={"key_source": self.describe()})
