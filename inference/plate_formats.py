"""Registration formats of European countries: is a read shaped like a European plate?

The reader's region head says only ``eu`` (one class for every European plate), and European
countries' formats are many, so no single pattern fits them. What does hold is that a real
registration fits at least one national format, and the reader's typical slips do not: a
dropped letter (``B91YE`` for ``B91SYE``), a vowel where Spain uses consonants only (``5554FHI``
for ``5554FHT``), the country band read into the text (``GBP445JRV``; :func:`without_band` takes
it off).

Each entry is one country's format as the reader reads it: no spaces, hyphens, seals or band.
Current and still-common older formats are listed; vanity, diplomatic, military and trade plates
mostly are not, which is why :func:`inference.engine.apply_country` uses this table only to choose
between candidates the reader itself finds likely, never to reject a read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_L = "[A-Z]"
_D = "[0-9]"
# Spanish plates since 2000 use consonants only (no vowels, no Q, no Ñ).
_ES_LETTER = "[BCDFGHJKLMNPRSTVWXYZ]"


@dataclass(frozen=True)
class PlateFormat:
    country: str  # ISO 3166-1 alpha-2 (GB for the United Kingdom)
    pattern: str  # regular expression over A-Z and 0-9, the whole registration
    what: str


# Poland: the area code starts with its voivodeship's letter, and the serial after it never uses
# B, D, I, O or Z (they pass for 8, 0, 1, 0 and 2); its shapes are fixed by the length of the
# area code (2000 system, cars).
_PL_AREA = "[BCDEFGKLNOPRSTWZ]"
_PL_SERIAL_LETTER = "[ACEFGHJKLMNPRSTUVWXY]"


def _shapes(*codes: str, letter: str = _L) -> str:
    """``LLDDLLL``, ... -> one alternation of patterns, ``L`` a ``letter`` and ``D`` a digit."""
    return "|".join("".join(letter if c == "L" else _D for c in code) for code in codes)


EUROPEAN_FORMATS: tuple[PlateFormat, ...] = (
    PlateFormat("GB", f"{_L}{{2}}{_D}{{2}}{_L}{{3}}", "since 2001 (AB12CDE)"),
    PlateFormat("GB", f"{_L}{_D}{{1,3}}{_L}{{3}}", "prefix, 1983-2001 (A123BCD)"),
    PlateFormat("GB", f"{_L}{{3}}{_D}{{1,3}}{_L}", "suffix, 1963-1983 (ABC123D)"),
    PlateFormat("GB", f"{_L}{{1,3}}{_D}{{1,3}}|{_L}{{1,2}}{_D}{{4}}", "dateless (AB1234)"),
    PlateFormat("GB", f"{_D}{{1,3}}{_L}{{1,3}}|{_D}{{4}}{_L}{{1,2}}", "dateless reversed"),
    PlateFormat("GB", f"{_L}{{3}}{_D}{{1,4}}", "Northern Ireland (ABZ1234)"),
    PlateFormat("RO", f"B{_D}{{2,3}}{_L}{{3}}", "Bucharest (B123ABC)"),
    PlateFormat("RO", f"{_L}{{2}}{_D}{{2}}{_L}{{3}}", "counties (CJ12ABC)"),
    PlateFormat("RO", f"{_L}{{1,2}}{_D}{{6}}", "temporary (B012345)"),
    PlateFormat("ES", f"{_D}{{4}}{_ES_LETTER}{{3}}", "since 2000 (1234BCD)"),
    PlateFormat("ES", f"{_L}{{1,2}}{_D}{{4}}{_L}{{1,2}}", "provincial, 1971-2000 (M1234AB)"),
    PlateFormat("ES", f"{_L}{{1,2}}{_D}{{1,6}}", "provincial, before 1971 (M123456)"),
    PlateFormat("FR", f"{_L}{{2}}{_D}{{3}}{_L}{{2}}", "SIV since 2009; also IT, SK (AB123CD)"),
    PlateFormat("FR", f"{_D}{{1,4}}{_L}{{1,3}}(?:{_D}{{2}}|2A|2B)", "FNI, before 2009 (123AB75)"),
    PlateFormat("DE", f"{_L}{{2,5}}{_D}{{1,4}}[EH]?", "district, letters, digits (MAB1234)"),
    PlateFormat("AT", f"{_L}{{1,2}}{_D}{{1,5}}{_L}{{1,3}}", "district, digits, letters"),
    PlateFormat("CH", f"{_L}{{2}}{_D}{{1,6}}", "canton, digits (ZH123456); also LV, LU"),
    PlateFormat("BE", f"{_D}{_L}{{3}}{_D}{{3}}", "since 2010 (1ABC123)"),
    PlateFormat("PT", f"{_D}{{2}}{_L}{{2}}{_D}{{2}}|{_L}{{2}}{_D}{{2}}{_L}{{2}}", "12AB34, AB12CD"),
    PlateFormat("PT", f"{_D}{{4}}{_L}{{2}}|{_L}{{2}}{_D}{{4}}", "1234AB, AB1234"),
    PlateFormat(
        "PL",
        f"{_PL_AREA}{_L}(?:"
        + _shapes("DDDDD", "DDDDL", "DDDLL", "DLDDD", "DLLDD", letter=_PL_SERIAL_LETTER)
        + ")",
        "county of two letters (WE12345, WE123AC)",
    ),
    PlateFormat(
        "PL",
        f"{_PL_AREA}{_L}{{2}}(?:"
        + _shapes(
            "LDDD", "DDLL", "DLDD", "DDLD", "DLLD", "LLDD",
            "DDDDD", "DDDDL", "DDDLL", "LDDDL", "LDDLL",
            letter=_PL_SERIAL_LETTER,
        )
        + ")",
        "county of three letters (WWL12AC, WWLA123C)",
    ),
    PlateFormat("CZ", f"{_D}{_L}[0-9A-Z]{_D}{{4}}", "since 2001 (1AB2345)"),
    PlateFormat("HU", f"{_L}{{3,4}}{_D}{{3}}", "ABC123, AABC123"),
    PlateFormat("BG", f"{_L}{{1,2}}{_D}{{4}}{_L}{{1,2}}", "CA1234AB"),
    PlateFormat("HR", f"{_L}{{2}}{_D}{{3,4}}{_L}{{1,2}}", "ZG1234AB"),
    PlateFormat("GR", f"{_L}{{3}}{_D}{{4}}", "ABC1234"),
    PlateFormat("SE", f"{_L}{{3}}{_D}{{2}}[0-9A-Z]", "ABC123, ABC12D"),
    PlateFormat("NO", f"{_L}{{2}}{_D}{{4,5}}", "AB12345; also DK"),
    PlateFormat("FI", f"{_L}{{2,3}}{_D}{{1,3}}", "ABC123"),
    PlateFormat("IE", f"{_D}{{2,3}}{_L}{{1,2}}{_D}{{1,6}}", "year, county, number (191D12345)"),
    # Dutch side codes 1-14: six characters in two or three groups of letters and digits.
    PlateFormat(
        "NL",
        _shapes(
            "LLDDDD", "DDDDLL", "DDLLDD", "LLDDLL", "LLLLDD", "DDLLLL", "DDLLLD",
            "DLLLDD", "LLDDDL", "LDDDLL", "LLLDDL", "LDDLLL", "DLLDDD", "DDDLLD",
        ),
        "side codes 1-14 (12ABC3, AB123C)",
    ),
)

_EUROPE = re.compile("^(?:" + "|".join(f"(?:{f.pattern})" for f in EUROPEAN_FORMATS) + ")$")


def fits_europe(text: str) -> bool:
    """Whether ``text`` (A-Z, 0-9, no separators) fits any listed European format."""
    return _EUROPE.match(text) is not None


def european_countries(text: str) -> tuple[str, ...]:
    """The countries whose listed formats ``text`` fits, in table order, each once."""
    found: list[str] = []
    for fmt in EUROPEAN_FORMATS:
        if fmt.country not in found and re.fullmatch(fmt.pattern, text):
            found.append(fmt.country)
    return tuple(found)


# Distinguishing signs (Vienna Convention) printed on the blue band at a plate's left, which the
# reader sometimes reads into the registration: the European Union's members', the United
# Kingdom's (GB on the band before 2021, UK since) and those of the other countries whose plates
# carry such a band. Signs shown only on an oval sticker beside the plate (Switzerland, Vatican,
# Monaco, the Crown dependencies) are not part of the plate the reader sees.
BAND_SIGNS = frozenset(
    (
        "A", "AL", "B", "BG", "BY", "CY", "CZ", "D", "DK", "E", "EST", "F", "FIN", "GB", "GR",
        "H", "HR", "I", "IRL", "IS", "L", "LT", "LV", "M", "MD", "MK", "MNE", "N", "NL", "NMK",
        "P", "PL", "RO", "S", "SK", "SLO", "SRB", "UA", "UK",
    )
)


def without_band(text: str) -> str | None:
    """``text`` with a leading distinguishing sign taken off, when ``text`` fits no listed format
    and what is left does (the shortest sign first: the least taken off); else None."""
    if fits_europe(text):
        return None
    for n in (1, 2, 3):
        if text[:n] in BAND_SIGNS and fits_europe(text[n:]):
            return text[n:]
    return None
