"""Errors of the storage package.

Each error says whose fault it is: the store file (``CorruptStore``, ``SchemaTooNew``), the key
material (``KeySourceError``), an attacker or a bit flip (``TamperDetected``), the disk
(``StoreFull``) or the caller (``AccessDenied``, ``StoreClosed``).
"""

from __future__ import annotations

from drivers.errors import VigilError


class StoreError(VigilError):
    """Root of the storage package's errors."""


class SchemaTooNew(StoreError, RuntimeError):
    """The database was written by newer code; this code refuses to touch it."""


class CorruptStore(StoreError, RuntimeError):
    """The database file failed its integrity check or is not a database at all."""


class KeySourceError(StoreError, RuntimeError):
    """The key-encryption key cannot be loaded, is malformed, or does not match this store."""


class InsecureKeyFile(KeySourceError, PermissionError):
    """The key file is readable or writable by group or others (it must be 0600)."""


class TamperDetected(StoreError, ValueError):
    """A ciphertext failed authentication: edited, truncated, or moved to another row."""


class DayKeyDamaged(TamperDetected):
    """The wrapped day key of a record failed authentication; the day's rows are set aside."""


class KeyDestroyed(StoreError, LookupError):
    """The day key of a record was destroyed by retention; the record is unrecoverable."""


class StoreFull(StoreError, OSError):
    """The disk (or the configured page limit) is full even after dropping what may be dropped."""


class StoreClosed(StoreError, RuntimeError):
    """The store was used after ``close()``."""


class AccessDenied(StoreError, PermissionError):
    """The caller's role or stated reason does not allow this access (the refusal is audited)."""


class InvalidSettings(StoreError, ValueError):
    """A store setting is outside its allowed range (the policy maximum retention included)."""
