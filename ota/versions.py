"""Release versions: dotted non-negative integers (``1.4.2``), compared numerically.

Nothing fancier on purpose: a version floor must have exactly one reading.
"""

from __future__ import annotations

from ota.errors import RepositoryRefused

Version = tuple[int, ...]


def parse(text: str) -> Version:
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(p.isdigit() and len(p) <= 9 for p in parts):
        raise RepositoryRefused(f"version {text!r} is not dotted integers like 1.4.2")
    return tuple(int(p) for p in parts) + (0,) * (4 - len(parts))


def newer(a: str, b: str) -> bool:
    """True when version ``a`` is strictly newer than ``b``."""
    return parse(a) > parse(b)


def at_least(a: str, b: str) -> bool:
    return parse(a) >= parse(b)


def highest(a: str, b: str) -> str:
    return a if parse(a) >= parse(b) else b
