"""The European registration format table."""

from __future__ import annotations

import re

import pytest

from inference.plate_formats import (
    EUROPEAN_FORMATS,
    european_countries,
    fits_europe,
    without_band,
)


@pytest.mark.parametrize("fmt", EUROPEAN_FORMATS, ids=lambda f: f"{f.country}-{f.what}")
def test_each_formats_own_example_fits_it(fmt) -> None:  # type: ignore[no-untyped-def]
    examples = re.findall(r"\b[A-Z0-9]{4,9}\b", fmt.what.split("(")[-1])
    assert examples or "(" not in fmt.what
    for example in examples:
        assert re.fullmatch(fmt.pattern, example), (fmt, example)
        assert fmt.country in european_countries(example)


@pytest.mark.parametrize(
    ("text", "country"),
    [
        ("B21GSB", "RO"),
        ("B121NCA", "RO"),
        ("TR05YPP", "RO"),
        ("B089414", "RO"),
        ("YB57UDX", "GB"),
        ("V147JAR", "GB"),
        ("1063HFG", "ES"),
        ("1966YC62", "FR"),
        ("27BN42", "NL"),
        ("03D39592", "IE"),
    ],
)
def test_real_registrations_fit_their_country(text: str, country: str) -> None:
    assert fits_europe(text)
    assert country in european_countries(text)


@pytest.mark.parametrize(
    "slip",
    [
        "5554FHI",  # a vowel in a Spanish registration (5554FHT)
        "GBP445JRV",  # the country band read into a British one (P445JRV)
        "7",  # too short for any format
        "ABCDEFGH",  # no digit
        "1234567890",
    ],
)
def test_reading_slips_fit_no_format(slip: str) -> None:
    assert not fits_europe(slip)
    assert european_countries(slip) == ()


@pytest.mark.parametrize(
    "text", ["WE12345", "WE1A234", "KR9XY12", "WWL12AC", "SK12345", "ZS123AC", "PO1234A"]
)
def test_polish_registrations_fit_poland(text: str) -> None:
    assert "PL" in european_countries(text)


@pytest.mark.parametrize(
    "text",
    [
        "GBP44JRV",  # a British plate read with its band and a digit dropped (P445JRV)
        "WE123BD",  # B and D are never serial letters (they pass for 8 and 0)
        "WWL12OI",
        "AA12345",  # no voivodeship starts with A
        "WWL1234567",
    ],
)
def test_shapes_poland_never_issues_are_not_polish(text: str) -> None:
    assert "PL" not in european_countries(text)


def test_spanish_plates_take_consonants_only() -> None:
    assert european_countries("5554FHT") == ("ES",)
    assert not fits_europe("5554AEI")


@pytest.mark.parametrize(
    ("read", "left"),
    [("GBP445JRV", "P445JRV"), ("ROB123ABC", "B123ABC"), ("GBAB12CDE", "AB12CDE"),
     ("DMAB1234", None), ("B123ABC", None), ("5554FHI", None), ("GB", None), ("", None),
     ("VNK296GP", None), ("CHAB12CDE", None)],
)
def test_a_leading_country_sign_comes_off_only_when_the_rest_fits(
    read: str, left: str | None
) -> None:
    # GBAB12CDE: the least taken off (GB, then AB12CDE fits); DMAB1234 fits as it is (a German
    # district code of three letters); B123ABC is Bucharest, not a Belgian band; Vatican's V and
    # Switzerland's CH are never on a plate's band (VNK296GP is a South African plate)
    assert without_band(read) == left
