"""Pure parts of the engine: country preference, crop choice, settings ranges."""

from __future__ import annotations

import numpy as np
import pytest

from inference.engine import EngineSettings, apply_country, plate_crop
from inference.records import Box, Candidate, Detection, OcrResult


def _ocr(*cands: tuple[str, float], region: str | None = "us-ca") -> OcrResult:
    c = tuple(Candidate(t, p) for t, p in cands)
    return OcrResult(
        text=c[0].text,
        confidence=c[0].confidence,
        char_confidences=(0.9,) * len(c[0].text),
        candidates=c,
        region=region,
        region_confidence=0.7,
    )


def test_auto_changes_nothing() -> None:
    r = _ocr(("ABC1234", 0.8), ("ABC1Z34", 0.1))
    assert apply_country(r, "auto") is r


def test_auto_uses_brazils_formats_only_when_the_region_head_is_sure_of_brazil() -> None:
    r = _ocr(("WWL12345", 0.5), ("ABC1D23", 0.3), region="br")
    assert apply_country(r, "auto") is r  # region confidence 0.7
    sure = OcrResult(r.text, r.confidence, r.char_confidences, r.candidates, "br", 0.95)
    assert apply_country(sure, "auto").text == "ABC1D23"
    eu = OcrResult(r.text, r.confidence, r.char_confidences, r.candidates, "eu", 0.99)
    assert apply_country(eu, "auto") is eu  # WWL12345 is a Polish format: kept


def _sure_eu(*cands: tuple[str, float], region_confidence: float = 0.95) -> OcrResult:
    r = _ocr(*cands, region="eu")
    return OcrResult(
        r.text, r.confidence, r.char_confidences, r.candidates, "eu", region_confidence
    )


def test_auto_prefers_a_likely_european_format_when_sure_of_europe() -> None:
    r = _sure_eu(("5554FHI", 0.5), ("5554FHT", 0.3), ("5554FH", 0.1))
    out = apply_country(r, "auto")
    assert out.text == "5554FHT" and out.confidence == pytest.approx(0.3)
    assert [c.text for c in out.candidates] == ["5554FHT", "5554FH", "5554FHI"]
    assert out.region == "eu" and out.region_confidence == 0.95


def test_auto_keeps_a_european_read_that_fits_or_has_no_likely_rival() -> None:
    fits = _sure_eu(("B91SYE", 0.5), ("B91YE", 0.3))
    assert apply_country(fits, "auto") is fits
    unlikely = _sure_eu(("5554FHI", 0.9), ("5554FHT", 0.05))  # under a tenth of the top
    assert apply_country(unlikely, "auto") is unlikely
    unsure = _sure_eu(("5554FHI", 0.5), ("5554FHT", 0.3), region_confidence=0.6)
    assert apply_country(unsure, "auto") is unsure


def test_a_country_band_read_into_a_european_plate_is_taken_off() -> None:
    r = _sure_eu(("GBP445JRV", 0.9), ("GBP445JPV", 0.05))
    r = OcrResult("GBP44?JRV", 0.9, (0.6, 0.7, 0.9, 0.9, 0.9, 0.2, 0.9, 0.9, 0.9),
                  r.candidates, "eu", 0.95, "partial")
    out = apply_country(r, "auto")
    assert out.text == "P44?JRV" and out.plate_class == "partial"
    assert out.char_confidences == (0.9, 0.9, 0.9, 0.2, 0.9, 0.9, 0.9)
    assert [c.text for c in out.candidates] == ["P445JRV", "GBP445JPV"]
    assert out.confidence == 0.9 and out.region == "eu"
    # a "?" only in the band: the rest is a full read
    band = OcrResult("?BP445JRV", 0.9, (0.2,) + (0.9,) * 8, r.candidates, "eu", 0.95, "partial")
    assert apply_country(band, "auto").plate_class == "full"


def test_a_band_is_not_taken_off_a_read_that_fits_or_where_europe_is_unsure() -> None:
    fits = _sure_eu(("B123ABC", 0.9),)  # Bucharest, though B is Belgium's sign
    assert apply_country(fits, "auto") is fits
    unsure = _sure_eu(("GBP445JRV", 0.9), region_confidence=0.6)
    assert apply_country(unsure, "auto") is unsure


def test_eu_prefers_any_european_format() -> None:
    r = _ocr(("GBP445JRV", 0.9), ("P445JRV", 0.05), region="eu")
    assert apply_country(r, "eu").text == "P445JRV"


def test_br_prefers_a_mercosur_or_old_brazilian_format() -> None:
    r = _ocr(("ABC12345", 0.5), ("ABC1D23", 0.3), ("AB1234", 0.1), region="br")
    out = apply_country(r, "br")
    assert out.text == "ABC1D23" and out.confidence == pytest.approx(0.3)
    assert [c.text for c in out.candidates] == ["ABC1D23", "ABC12345", "AB1234"]
    assert out.region == "br"


def test_region_of_another_country_is_dropped() -> None:
    r = _ocr(("ABC123", 0.9), region="eu")
    out = apply_country(r, "us")
    assert out.text == "ABC123" and out.region is None and out.region_confidence == 0.0


def test_no_candidate_in_format_keeps_the_read() -> None:
    r = _ocr(("7", 0.9), ("77", 0.05), region=None)
    out = apply_country(r, "br")
    assert out.text == "7" and out.candidates == r.candidates


def test_partial_read_kept_when_its_top_candidate_fits() -> None:
    r = _ocr(("K555KM", 0.4), ("K555KN", 0.2), region="eu")
    r = OcrResult("K?55K?", 0.4, (0.9, 0.3, 0.9, 0.9, 0.9, 0.2), r.candidates, "eu", 0.5)
    out = apply_country(r, "eu")
    assert out.text == "K?55K?" and out.char_confidences == r.char_confidences


def test_char_confidences_follow_the_chosen_text() -> None:
    r = _ocr(("ABC12345", 0.5), ("ABC1234", 0.3), region="br")
    out = apply_country(r, "br")
    assert out.text == "ABC1234" and len(out.char_confidences) == 7


def test_plate_crop_uses_corners_when_trusted_else_box_with_margin() -> None:
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[90:110, 100:200] = 255
    box_only = Detection(Box(100, 90, 100, 20), 0.9)
    crop = plate_crop(frame, box_only)
    assert crop.shape[0] > 20 and crop.shape[1] > 100  # margin added
    quad = ((100.0, 90.0), (200.0, 90.0), (200.0, 110.0), (100.0, 110.0))
    warped = plate_crop(frame, Detection(Box(100, 90, 100, 20), 0.9, corners=quad))
    assert warped.shape[2] == 3 and 100 <= warped.shape[1] <= 112


@pytest.mark.parametrize(
    "kwargs", [{"country": "fr"}, {"top_n": 0}, {"top_n": 51}, {"max_plates": 0}]
)
def test_settings_ranges(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        EngineSettings(**kwargs)  # type: ignore[arg-type]
