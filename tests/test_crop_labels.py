"""Which text labels of the crop collections are trusted (training/recognizer/splits.py), pure."""

from __future__ import annotations

import pytest

from training.recognizer.splits import trusted_text


@pytest.mark.parametrize("text", ["AXK3125", "IRW0357", "ZZZ0000"])
def test_an_old_brazilian_registration_is_kept(text: str) -> None:
    assert trusted_text("br", text) == text


@pytest.mark.parametrize("text", ["PVD8Q53", "KXD7I21", "HDV2D20", "AXK312", "AXK31250", None, ""])
def test_a_brazilian_label_no_plate_of_the_collection_could_carry_is_unknown(
    text: str | None,
) -> None:
    # the collection predates Mercosur plates: a letter in fifth place is a naming slip
    assert trusted_text("br", text) is None


def test_a_us_label_of_one_character_is_unknown_and_others_are_kept() -> None:
    assert trusted_text("us", "0") is None
    assert trusted_text("us", "IR0NY") == "IR0NY"
    assert trusted_text("us", "7881BZ") == "7881BZ"


def test_other_regions_pass_through() -> None:
    assert trusted_text("eu", "B69BMA") == "B69BMA"
