"""Plate text formats per region: pure functions of a numpy Generator, no I/O.

``canonical`` text is what a reader must output: A-Z and 0-9 only. ``display`` text is what is
printed on the plate (spaces, dashes, dots that are not part of the registration).
"""

from __future__ import annotations

import re

import numpy as np

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"
ALPHANUM = LETTERS + DIGITS
# Letters several US states leave out of serial formats because they look like digits.
_US_SERIAL_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"

US_STATES = (
    "ak al ar az ca co ct dc de fl ga hi ia id il in ks ky la ma md me mi mn mo ms mt nc nd ne "
    "nh nj nm nv ny oh ok or pa ri sc sd tn tx ut va vt wa wi wv wy"
).split()
EU_COUNTRIES = ("de", "fr", "it", "es", "nl", "be", "pl", "at", "cz", "pt", "se", "gb")

# Pattern letters: L letter, D digit, A either; anything else is printed but not read.
US_PATTERNS: dict[str, tuple[str, ...]] = {
    "ca": ("DLLLDDD",),
    "tx": ("LLL-DDDD", "LLD-LDDD"),
    "ny": ("LLL-DDDD",),
    "pa": ("LLL-DDDD",),
    "fl": ("LLL LLD", "DDD LLL", "LLLL DD"),
    "il": ("LL DDDDD", "DDDDDDD", "L DDDDD"),
    "wa": ("LLLDDDD", "DDD-LLL"),
    "az": ("LLLDDDD",),
    "nj": ("LDDLLL", "LLL-DDL"),
    "ma": ("DLLLDD", "DDDLDD", "DLL DDD"),
    "mi": ("LLL DDDD", "DLLLDD"),
    "oh": ("LLL DDDD",),
    "ga": ("LLL DDDD", "DDDD LLL"),
    "va": ("LLL-DDDD",),
    "nh": ("DDD DDDD", "DDDDDDD"),
    "de": ("DDDDDD", "DDDDD"),
    "in": ("DDDL", "DDDLL", "DDDLLL"),
    "mn": ("DDD-LLL", "LLL-DDD"),
    "nv": ("DDD-LDD", "DDL-DDD"),
    "co": ("LLL-DDD", "DDD-LLL"),
    "or": ("DDD LLL", "LLL DDD"),
}
US_DEFAULT = ("LLL DDD", "DDD LLL", "LLL-DDDD", "DLLLDDD", "LLD DDDL", "LL DDDD", "DDDD LL")

EU_PATTERNS: dict[str, tuple[str, ...]] = {
    "de": ("LL LL DDDD", "L LL DDD", "LLL L DDD"),
    "fr": ("LL-DDD-LL",),
    "it": ("LL DDD LL",),
    "es": ("DDDD LLL",),
    "nl": ("LL-DDD-L", "D-LLL-DD", "DD-LLL-D"),
    "be": ("D-LLL-DDD",),
    "pl": ("LL DDDDD", "LLL DDLL"),
    "at": ("L DDDD LL", "LL DDD L"),
    "cz": ("DLD DDDD",),
    "pt": ("DD-LL-DD", "LL-DD-LL"),
    "se": ("LLL DDL", "LLL DDD"),
    "gb": ("LLDD LLL",),
}
BR_PATTERNS = {"mercosur": "LLLDLDD", "grey": "LLL-DDDD"}


def canonical(text: str) -> str:
    """Upper-case and drop everything that is not A-Z / 0-9."""
    return re.sub(r"[^A-Z0-9]", "", text.upper())


def fill(rng: np.random.Generator, pattern: str, letters: str = LETTERS) -> str:
    out = []
    for c in pattern:
        if c == "L":
            out.append(letters[int(rng.integers(len(letters)))])
        elif c == "D":
            out.append(DIGITS[int(rng.integers(10))])
        elif c == "A":
            out.append(ALPHANUM[int(rng.integers(36))])
        else:
            out.append(c)
    return "".join(out)


def vanity(rng: np.random.Generator) -> str:
    """A personalised plate: 2-7 characters, mostly letters, sometimes one space."""
    n = int(rng.integers(2, 8))
    pool = LETTERS * 3 + DIGITS
    s = "".join(pool[int(rng.integers(len(pool)))] for _ in range(n))
    if n >= 4 and rng.random() < 0.3:
        k = int(rng.integers(1, n))
        s = s[:k] + " " + s[k:]
    return s


def us_text(rng: np.random.Generator, state: str) -> str:
    if rng.random() < 0.15:
        return vanity(rng)
    pats = US_PATTERNS.get(state, US_DEFAULT)
    if state not in US_PATTERNS and rng.random() < 0.3:
        pats = US_DEFAULT
    return fill(rng, pats[int(rng.integers(len(pats)))], _US_SERIAL_LETTERS)


def paper_text(rng: np.random.Generator) -> str:
    """Temporary tag numbers: mostly digits, sometimes a letter prefix."""
    pats = ("DDDDDDD", "DDDDDDDD", "LDDDDDD", "DDLDDDDD", "LLDDDDD")
    return fill(rng, pats[int(rng.integers(len(pats)))])


def eu_text(rng: np.random.Generator, country: str) -> str:
    pats = EU_PATTERNS[country]
    return fill(rng, pats[int(rng.integers(len(pats)))])


def br_text(rng: np.random.Generator, style: str) -> str:
    return fill(rng, BR_PATTERNS[style])


def split_rows(display: str) -> tuple[str, str]:
    """Split a plate's printed text into two rows at the separator nearest the middle."""
    seps = [i for i, c in enumerate(display) if c in " -"]
    if seps:
        k = min(seps, key=lambda i: abs(i - len(display) / 2))
        return display[:k].strip(" -"), display[k + 1 :].strip(" -")
    k = (len(display) + 1) // 2
    return display[:k], display[k:]
