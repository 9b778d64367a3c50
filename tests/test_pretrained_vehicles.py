"""The pretrained vehicle detector's measuring script: anchors, decoding, asset extraction."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from training.detector import pretrained_vehicles as pv


def test_anchor_count_matches_the_model_output() -> None:
    a = pv.anchors()
    assert a.shape == (1917, 4)
    assert np.all((a[:, :2] > 0) & (a[:, :2] < 1))


def test_zero_encodings_decode_to_the_anchors_in_frame_pixels() -> None:
    a = pv.anchors()[:3]  # first cell: three anchors of different shapes, barely overlapping
    logits = np.full((3, 24), -10.0)
    logits[0, 23] = 3.0  # a sure car on the first anchor only
    boxes, scores = pv.decode(np.zeros((3, 4)), logits, [18, 23], (600, 300), a, threshold=0.5)
    assert len(boxes) == 1 and scores[0] == pytest.approx(1 / (1 + np.exp(-3.0)))
    yc, xc, h, w = a[0]
    assert boxes[0] == pytest.approx([(xc - w / 2) * 600, (yc - h / 2) * 300, w * 600, h * 300])


def _tarball(tmp_path: Path, model: bytes) -> Path:
    labels = b"???\nVehicle\nCar\n"
    loader = (
        'loadPackage({"files": ['
        + ", ".join(
            json.dumps({"filename": f, "start": s, "end": e})
            for f, s, e in (
                (f"/{pv.LABELS_NAME}", 0, len(labels)),
                (f"/third_party/{pv.MODEL_NAME}", len(labels), len(labels) + len(model)),
            )
        )
        + "]});"
    )
    path = tmp_path / "objectron.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (
            ("package/objectron_solution_packed_assets_loader.js", loader.encode()),
            ("package/objectron_solution_packed_assets.data", labels + model),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_extract_refuses_a_model_that_is_not_the_expected_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sha256"):
        pv.extract(_tarball(tmp_path, b"not the model"), tmp_path / "out")


def test_extract_writes_the_model_and_reads_the_labels(tmp_path: Path, monkeypatch) -> None:
    import hashlib

    model = b"\x00tflite bytes"
    monkeypatch.setattr(pv, "MODEL_SHA256", hashlib.sha256(model).hexdigest())
    path, labels = pv.extract(_tarball(tmp_path, model), tmp_path / "out")
    assert path.read_bytes() == model and labels == ["???", "Vehicle", "Car"]
