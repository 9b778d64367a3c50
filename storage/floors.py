"""Version floors: the highest version of each signed list the unit has accepted (anti-rollback).

Kept in the store's ``meta`` table, each value MACed under a key derived from the KEK, so the
floor does not live beside the list it guards: deleting or replacing a hotlist file on the SD
card does not lower it, and an edited value is refused (:class:`FloorTampered`) rather than
believed. A floor only ever rises.
"""

from __future__ import annotations

import hashlib
import hmac

from storage.db import Database
from storage.errors import StoreError

_PREFIX = "floor:"


class FloorTampered(StoreError, ValueError):
    """A floor's MAC does not verify: the store file was edited."""


class VersionFloors:
    def __init__(self, db: Database, mac_key: bytes) -> None:
        self._db = db
        self._key = mac_key

    def _mac(self, name: str, version: int) -> str:
        return hmac.new(self._key, f"{name}\0{version}".encode(), hashlib.sha256).hexdigest()

    def get(self, name: str) -> int:
        """The floor of ``name`` (0: nothing accepted yet)."""
        with self._db.locked() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (_PREFIX + name,)
                               ).fetchone()
        if row is None:
            return 0
        version_s, _, mac = str(row[0]).partition(" ")
        try:
            version = int(version_s)
        except ValueError as e:
            raise FloorTampered(f"version floor of {name!r} is malformed") from e
        if not hmac.compare_digest(mac, self._mac(name, version)):
            raise FloorTampered(f"version floor of {name!r} does not verify (edited store?)")
        return version

    def raise_to(self, name: str, version: int) -> int:
        """Raise the floor of ``name`` to ``version`` (never lowers it); the floor after."""
        with self._db.transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (_PREFIX + name,)
                               ).fetchone()
            current = self.get(name) if row is not None else 0
            if version > current:
                conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                             (_PREFIX + name, f"{version} {self._mac(name, version)}"))
                return version
        return current
