"""Opening a store the way the tests do: a file under the test's directory, maintenance thread
off (tests call ``maintenance()`` or ``purge_expired()`` themselves)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drivers.clock import Clock, FakeClock
from storage.crypto import CipherSuite
from storage.keys import KeySource, MemoryKeySource
from storage.settings import StoreSettings
from storage.store import Store


def open_store(
    path: Path,
    key_source: KeySource | None = None,
    clock: Clock | None = None,
    *,
    settings: StoreSettings | None = None,
    cipher_suite: CipherSuite | None = None,
    **settings_kw: Any,
) -> Store:
    """``Store.open`` with a random in-memory KEK, a :class:`FakeClock` and default settings
    unless given (``settings_kw`` are :class:`StoreSettings` fields)."""
    if settings is None:
        settings = StoreSettings(**settings_kw)
    elif settings_kw:
        raise TypeError("give either settings or StoreSettings fields, not both")
    return Store.open(
        path,
        key_source if key_source is not None else MemoryKeySource(),
        settings,
        clock if clock is not None else FakeClock(),
        background=False,
        cipher_suite=cipher_suite,
    )
