"""TFLiteModel: a verified model loads and runs; anything wrong with it is a ModelError."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from inference.errors import ModelError
from inference.manifest import ModelManifest, parse_manifest
from inference.runtime import TFLiteModel, dequantize, quantize

DATA = Path(__file__).parent / "data" / "runtime"


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    for f in ("tiny.tflite", "tiny.json"):
        shutil.copy(DATA / f, tmp_path / f)
    return tmp_path


def _edit_manifest(model_dir: Path, edit) -> None:  # type: ignore[no-untyped-def]
    p = model_dir / "tiny.json"
    data = json.loads(p.read_text())
    edit(data)
    p.write_text(json.dumps(data))


def test_loads_and_runs_float_input(model_dir: Path) -> None:
    with TFLiteModel.load(model_dir, "tiny") as m:
        out = m.run(np.full((8, 16), 0.5, dtype=np.float32))
        assert set(out) == {"class", "score"}
        assert out["class"].shape == (1, 3) and out["class"].dtype == np.float32
        assert out["score"].shape == (1, 5)
        assert abs(float(out["class"].sum()) - 1.0) < 0.03  # softmax survives int8


def test_int8_input_passes_through_and_matches_float(model_dir: Path) -> None:
    with TFLiteModel.load(model_dir, "tiny") as m:
        x = np.random.default_rng(1).random((1, 8, 16, 1), dtype=np.float32)
        a = m.run(image=x)
        b = m.run(image=quantize(x, m.manifest.input("image")))
        np.testing.assert_array_equal(a["score"], b["score"])


def test_outputs_differ_with_input(model_dir: Path) -> None:
    with TFLiteModel.load(model_dir, "tiny") as m:
        a = m.run(np.zeros((1, 8, 16, 1), np.float32))["score"]
        b = m.run(np.ones((1, 8, 16, 1), np.float32))["score"]
        assert not np.array_equal(a, b)


def test_wrong_input_name_or_shape(model_dir: Path) -> None:
    with TFLiteModel.load(model_dir, "tiny") as m:
        with pytest.raises(ModelError, match="takes inputs"):
            m.run(pixels=np.zeros((1, 8, 16, 1), np.float32))
        with pytest.raises(ModelError, match="needs shape"):
            m.run(np.zeros((1, 8, 8, 1), np.float32))


def test_closed_model_refuses(model_dir: Path) -> None:
    m = TFLiteModel.load(model_dir, "tiny")
    m.close()
    with pytest.raises(ModelError, match="closed"):
        m.run(np.zeros((1, 8, 16, 1), np.float32))


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="missing"):
        TFLiteModel.load(tmp_path, "tiny")


def test_missing_model_file(model_dir: Path) -> None:
    (model_dir / "tiny.tflite").unlink()
    with pytest.raises(ModelError, match="missing"):
        TFLiteModel.load(model_dir, "tiny")


def test_truncated_model_file(model_dir: Path) -> None:
    p = model_dir / "tiny.tflite"
    p.write_bytes(p.read_bytes()[:1000])
    with pytest.raises(ModelError, match="truncated"):
        TFLiteModel.load(model_dir, "tiny")


def test_corrupt_model_file_same_size(model_dir: Path) -> None:
    p = model_dir / "tiny.tflite"
    blob = bytearray(p.read_bytes())
    blob[100:200] = bytes(100)
    p.write_bytes(bytes(blob))
    with pytest.raises(ModelError, match="SHA-256"):
        TFLiteModel.load(model_dir, "tiny")


def test_garbage_that_matches_its_manifest_is_refused_by_the_interpreter(model_dir: Path) -> None:
    import hashlib

    p = model_dir / "tiny.tflite"
    blob = b"\x00garbage, not a flatbuffer" * 50
    p.write_bytes(blob)

    def edit(d):  # type: ignore[no-untyped-def]
        d["size_bytes"] = len(blob)
        d["sha256"] = hashlib.sha256(blob).hexdigest()

    _edit_manifest(model_dir, edit)
    with pytest.raises(ModelError, match="cannot be loaded"):
        TFLiteModel.load(model_dir, "tiny")


def test_manifest_shape_mismatch(model_dir: Path) -> None:
    _edit_manifest(model_dir, lambda d: d["inputs"][0].__setitem__("shape", [1, 16, 16, 1]))
    with pytest.raises(ModelError, match="manifest says"):
        TFLiteModel.load(model_dir, "tiny")


def test_manifest_quantization_mismatch(model_dir: Path) -> None:
    _edit_manifest(model_dir, lambda d: d["outputs"][1].__setitem__("quantization", [0.5, 0]))
    with pytest.raises(ModelError, match="manifest says"):
        TFLiteModel.load(model_dir, "tiny")


def test_manifest_output_count_mismatch(model_dir: Path) -> None:
    _edit_manifest(model_dir, lambda d: d["outputs"].pop())
    with pytest.raises(ModelError, match="declares 1"):
        TFLiteModel.load(model_dir, "tiny")


def test_unknown_output_name_found_by_unique_shape(model_dir: Path) -> None:
    _edit_manifest(model_dir, lambda d: d["outputs"][1].__setitem__("name", "logits"))
    with TFLiteModel.load(model_dir, "tiny") as m:
        assert m.run(np.zeros((1, 8, 16, 1), np.float32))["logits"].shape == (1, 5)


def test_manifest_validation_names_the_field() -> None:
    good = json.loads((DATA / "tiny.json").read_text())
    parse_manifest(good)
    for field, value, msg in [
        ("sha256", "abc", "'sha256'"),
        ("size_bytes", -1, "'size_bytes'"),
        ("file", "../x.tflite", "'file'"),
        ("labels", [], "'labels'"),
        ("inputs", [], "'inputs'"),
    ]:
        bad = dict(good)
        bad[field] = value
        with pytest.raises(ModelError, match=msg):
            parse_manifest(bad, source="m.json")
    bad = dict(good)
    del bad["licence"]
    with pytest.raises(ModelError, match="'licence' is missing"):
        parse_manifest(bad)
    bad = json.loads(json.dumps(good))
    bad["inputs"][0]["dtype"] = "float64"
    with pytest.raises(ModelError, match=r"inputs\[0\]\.dtype"):
        parse_manifest(bad)


def test_manifest_round_trip(tmp_path: Path) -> None:
    m = ModelManifest.load(DATA / "tiny.json")
    assert parse_manifest(m.to_dict()) == m


def test_bad_json_manifest(model_dir: Path) -> None:
    (model_dir / "tiny.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        TFLiteModel.load(model_dir, "tiny")


def test_quantize_round_trip() -> None:
    from inference.manifest import TensorSpec

    spec = TensorSpec("x", (3,), "int8", (1 / 255, -128))
    x = np.array([0.0, 128 / 255, 1.0], np.float32)
    q = quantize(x, spec)
    assert q.dtype == np.int8 and q.tolist() == [-128, 0, 127]
    np.testing.assert_allclose(dequantize(q, spec), x, atol=1 / 255)
    assert quantize(np.array([5.0], np.float32), spec).tolist() == [127]
