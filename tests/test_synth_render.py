"""Synthetic plate renderer and augmenter (needs Pillow: runs in the training venv)."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("PIL")
from training.synth import STYLES, augment_plate, render_plate
from training.synth.formats import US_STATES, canonical, split_rows

ASPECT = {"us": 2.0, "paper": 2.0, "eu1": 4.73, "mercosur": 3.08, "grey": 3.08}


@pytest.mark.parametrize("style", STYLES)
def test_every_style_renders_canonical_text_and_aspect(style: str) -> None:
    rng = np.random.default_rng(1)
    for _ in range(5):
        p = render_plate(rng, style=style)
        assert re.fullmatch(r"[A-Z0-9]{1,10}", p.text)
        h, w, c = p.image.shape
        assert c == 3 and p.image.dtype == np.uint8
        if style in ASPECT:
            assert abs(w / h - ASPECT[style]) < 0.1
        assert p.rows == (2 if style in ("eu2", "mercosur2", "grey2") else 1)
        assert p.plate_class == ("paper" if style == "paper" else "full")
        assert p.image.std() > 10  # something was drawn


def test_every_us_state_template_renders() -> None:
    rng = np.random.default_rng(2)
    for st in US_STATES:
        p = render_plate(rng, region=f"us-{st}", style="us")
        assert p.region == f"us-{st}"


def test_given_text_is_drawn_and_canonicalised() -> None:
    rng = np.random.default_rng(3)
    a = render_plate(rng, region="us-ca", text="7ABC 123", style="us")
    b = render_plate(np.random.default_rng(3), region="us-ca", text="7XYZ 999", style="us")
    assert a.text == "7ABC123" and b.text == "7XYZ999"
    assert not np.array_equal(a.image, b.image)


def test_same_seed_same_plate() -> None:
    a = render_plate(np.random.default_rng(7))
    b = render_plate(np.random.default_rng(7))
    assert a.text == b.text and np.array_equal(a.image, b.image)


def test_heldout_font_only_in_test_split() -> None:
    rng = np.random.default_rng(4)
    train_fonts = {render_plate(rng).font for _ in range(60)}
    test_fonts = {render_plate(rng, split="test").font for _ in range(10)}
    assert "DejaVuSansCondensed-Bold.ttf" not in train_fonts
    assert test_fonts == {"DejaVuSansCondensed-Bold.ttf"}


def test_bad_arguments() -> None:
    rng = np.random.default_rng(5)
    for kwargs in (
        {"region": "xx"},
        {"region": "us-zz"},
        {"style": "nope"},
        {"region": "br", "style": "us"},
        {"text": "--"},
    ):
        with pytest.raises(ValueError):
            render_plate(rng, **kwargs)  # type: ignore[arg-type]


def test_augment_corners_follow_the_plate() -> None:
    rng = np.random.default_rng(6)
    p = render_plate(rng, style="us")
    img, corners = augment_plate(rng, p.image, night_ir=True, strength=0.0)
    assert img.ndim == 3 and img.dtype == np.uint8
    assert np.allclose(img[..., 0], img[..., 1])  # IR look has no colour
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = corners
    assert x0 < x1 and y1 < y2 and x3 < x2 and y0 < y3
    _h, w = p.image.shape[:2]
    assert abs((x1 - x0) - w) < 0.1 * w  # strength 0: no big distortion
    for x, y in corners:
        assert 0 <= x <= img.shape[1] and 0 <= y <= img.shape[0]


def test_augment_variety() -> None:
    rng = np.random.default_rng(8)
    p = render_plate(rng, style="mercosur")
    outs = [augment_plate(rng, p.image)[0] for _ in range(4)]
    assert len({o.shape for o in outs}) > 1 or not np.array_equal(outs[0], outs[1])


def test_text_helpers() -> None:
    assert canonical("ab-12 c.d") == "AB12CD"
    assert split_rows("AB 123 CD") in (("AB", "123 CD"), ("AB 123", "CD"))
    assert split_rows("ABCDEF") == ("ABC", "DEF")


def test_font_given_is_drawn_and_a_missing_one_named() -> None:
    from training.synth.render import MERCOSUR_FONT

    p = render_plate(np.random.default_rng(8), style="mercosur", font=MERCOSUR_FONT)
    assert p.font == MERCOSUR_FONT and re.fullmatch(r"[A-Z]{3}[0-9][A-Z][0-9]{2}", p.text)
    with pytest.raises(FileNotFoundError, match="no-such-face"):
        render_plate(np.random.default_rng(8), style="mercosur", font="no-such-face.ttf")


def test_rendered_mercosur_crops_for_the_reader_stay_one_row() -> None:
    pytest.importorskip("onnx")  # the trainer's graph module; training venv only
    from training.recognizer.finetune import rendered_crop

    rng = np.random.default_rng(9)
    for _ in range(6):
        crop, text = rendered_crop(rng, [], "mercosur")
        h, w = crop.shape[:2]
        assert re.fullmatch(r"[A-Z]{3}[0-9][A-Z][0-9]{2}", text)
        assert 2.0 < w / h < 5.0  # one row, not two put side by side
    two, text2 = rendered_crop(rng, [], "mercosur2")
    assert two.shape[1] / two.shape[0] > 3.0 and len(text2) == 7  # rows side by side


def test_pasted_mercosur_set_keeps_one_row_plates_and_unreadable_ones(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import sys

    import cv2

    from training.realscenes import two_rows

    part = tmp_path / "val"
    (part / "images").mkdir(parents=True)
    cv2.imwrite(str(part / "images" / "a.jpg"), np.full((360, 640, 3), 90, np.uint8))
    plates = [
        {"box": [100.0, 200.0, 120.0, 28.0], "text": "B123ABC", "region": "eu"},
        {"box": [400.0, 200.0, 100.0, 24.0], "text": None, "region": "eu"},
    ]
    (part / "labels.jsonl").write_text(json.dumps({"image": "images/a.jpg", "plates": plates}))
    argv = ["two_rows", "--part", "val", "--style", "mercosur", "--font", "fe",
            "--root", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    two_rows.main()
    out = tmp_path / "one-row-mercosur-fe-val"
    [line] = (out / "labels.jsonl").read_text().splitlines()
    got = json.loads(line)["plates"]
    assert re.fullmatch(r"[A-Z]{3}[0-9][A-Z][0-9]{2}", got[0]["text"])
    assert got[0]["region"] == "br" and got[1]["text"] is None
    w, h = got[0]["box"][2:]
    assert abs(w - 0.9 * 120) <= 1 and 2.8 < w / h < 3.4  # one row, 0.9 of the box wide
    assert cv2.imread(str(out / "images" / "a.jpg")) is not None
