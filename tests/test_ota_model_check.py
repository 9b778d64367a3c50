"""A staged model directory is checked before its slot is offered (firmware.app.ota_glue)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from firmware.app.ota_glue import check_models

MODELS = Path(__file__).resolve().parents[1] / "inference" / "models"


def _copy(tmp_path: Path) -> Path:
    d = tmp_path / "models"
    shutil.copytree(MODELS, d)
    return d


def test_the_shipped_models_pass(tmp_path: Path) -> None:
    check_models(_copy(tmp_path))


def test_a_swapped_model_file_is_refused(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    shutil.copy(d / "detector.tflite", d / "detector_window.tflite")
    with pytest.raises(ValueError, match=r"detector_window\.tflite does not match"):
        check_models(d)


def test_a_window_model_without_its_detector_is_refused(tmp_path: Path) -> None:
    """A model update that replaced the detector and kept the old window model."""
    d = _copy(tmp_path)
    m = json.loads((d / "detector.json").read_text())
    blob = bytearray((d / "detector.tflite").read_bytes())
    blob[-1] ^= 0xFF
    (d / "detector.tflite").write_bytes(bytes(blob))
    m["sha256"] = hashlib.sha256(bytes(blob)).hexdigest()
    (d / "detector.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="detector_window was made from detector"):
        check_models(d)
    (d / "detector.json").unlink()
    (d / "detector.tflite").unlink()
    with pytest.raises(ValueError, match="does not hold"):
        check_models(d)
