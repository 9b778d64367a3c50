"""Which text labels of the crop collections are trusted, and the ones read again by a person
(training/recognizer/splits.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.recognizer.splits import label_fixes, labelled, split_of, trusted_text


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


def _collection(tmp_path: Path, labels: list[str]) -> Path:
    folder = tmp_path / "br-crops"
    folder.mkdir()
    lines = [
        json.dumps({"image": f"images/{i}.jpg", "plate_text": t}) for i, t in enumerate(labels)
    ]
    (folder / "labels.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def _train_and_held_out_labels() -> tuple[str, str]:
    names = (f"AAA{n:04d}" for n in range(10_000))
    train = next(t for t in names if split_of(t) == "train")
    held = next(t for t in names if split_of(t) != "train")
    return train, held


def test_a_label_read_again_by_a_person_replaces_the_written_one_and_keeps_its_side(
    tmp_path: Path,
) -> None:
    train, held = _train_and_held_out_labels()
    data = _collection(tmp_path, [train, held, "PVD8Q53"])
    fixes = {("br-crops", "images/0.jpg"): "IRW0357", ("br-crops", "images/1.jpg"): None}
    crops = labelled("br-crops", "br", data, fixes)
    assert [(c.image, c.split, c.text) for c in crops] == [
        ("images/0.jpg", "train", "IRW0357"),
        ("images/1.jpg", split_of(held), None),  # unreadable: never trained or scored on
        ("images/2.jpg", split_of("PVD8Q53"), None),  # not a plate of the collection
    ]


def test_a_held_out_crop_of_a_plate_also_trained_on_under_another_name_has_no_text(
    tmp_path: Path,
) -> None:
    train, held = _train_and_held_out_labels()
    data = _collection(tmp_path, [train, held])
    # the training crop's label was a slip for the held-out crop's plate
    crops = labelled("br-crops", "br", data, {("br-crops", "images/0.jpg"): held})
    assert [(c.split, c.text) for c in crops] == [("train", held), (split_of(held), None)]


def test_the_committed_fixes_name_crops_and_hold_plates_of_the_collection() -> None:
    fixes = label_fixes()
    assert len(fixes) >= 100
    for (name, image), text in fixes.items():
        assert name == "openalpr-traindetector-br-crops" and image.startswith("images/")
        assert text is None or trusted_text("br", text) == text
