"""Deltas: rebuilt from the running slot, applied, verified; a wrong base falls back."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from ota.bundle import build, unpack
from ota.delta import apply_delta, make_delta
from ota.errors import BundleRefused
from ota.slotfs import SlotFS


def _src(tmp: Path, name: str, change: str = "") -> Path:
    src = tmp / name
    (src / "firmware").mkdir(parents=True)
    for i in range(40):
        (src / "firmware" / f"m{i}.py").write_text(f"# module {i}\n" + "x = 1\n" * 400)
    (src / "firmware" / "m3.py").write_text("# module 3\n" + "x = 1\n" * 400 + change)
    return src


def test_code_only_delta_is_small_and_rebuilds_the_new_bundle(tmp_path):
    old, new = tmp_path / "1.0.vbundle", tmp_path / "1.1.vbundle"
    build(old, name="vigil", version="1.0.0", kind="app", trees={"app": _src(tmp_path, "a")})
    build(new, name="vigil", version="1.1.0", kind="app",
          trees={"app": _src(tmp_path, "b", change="def f():\n    return 2\n")})
    fields = make_delta(old, new, tmp_path / "d.vdelta")
    ratio = (tmp_path / "d.vdelta").stat().st_size / new.stat().st_size
    assert ratio <= 0.2, ratio
    fs = SlotFS(tmp_path / "ota")
    fs.init("0.9.0")
    slot = fs.slot_dir("b")
    m = unpack(old, slot)
    fs.mark_complete("b", m)
    out = apply_delta(slot, tmp_path / "d.vdelta", tmp_path / "new.tar", fields)
    assert out.read_bytes() == gzip.decompress(new.read_bytes())
    unpack(out, tmp_path / "check")
    assert "return 2" in (tmp_path / "check" / "app" / "firmware" / "m3.py").read_text()

    (slot / "app" / "firmware" / "m5.py").write_text("tampered\n")
    with pytest.raises(BundleRefused, match="base"):
        apply_delta(slot, tmp_path / "d.vdelta", tmp_path / "new2.tar", fields)
    with pytest.raises(BundleRefused):
        apply_delta(fs.slot_dir("a"), tmp_path / "d.vdelta", tmp_path / "x.tar", fields)
