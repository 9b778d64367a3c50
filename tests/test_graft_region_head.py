"""A new region head grafted into the committed reader file: characters untouched, head widened."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.recognizer.graft_region_head import _outputs, check, graft

MODEL = Path(__file__).resolve().parents[1] / "inference" / "models" / "ocr.tflite"


def _head(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The region head's weights (features x R) and bias as they are in ``blob``."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(blob), 0)
    g = model.subgraphs[0]
    made_by = {t: op for op in g.operators for t in op.outputs}
    out = next(t for t in g.outputs if len(g.tensors[t].shape) == 2)
    add = made_by[made_by[out].inputs[0]]
    fc = made_by[made_by[add.inputs[0]].inputs[0]]
    w = np.frombuffer(bytes(model.buffers[g.tensors[fc.inputs[1]].buffer].data), np.float32)
    b = np.frombuffer(bytes(model.buffers[g.tensors[add.inputs[1]].buffer].data), np.float32)
    return w.reshape(b.size, -1).T.copy(), b.copy()


def test_a_wider_head_keeps_the_characters_and_the_old_classes(tmp_path: Path) -> None:
    blob = MODEL.read_bytes()
    w, b = _head(blob)
    n = b.size
    assert w.shape == (120, n)
    # One class more that never wins: the others come out as the old head's.
    new = graft(blob, np.concatenate([w, np.zeros((120, 1), np.float32)], axis=1),
                np.concatenate([b, [-60.0]]).astype(np.float32))
    old_path, new_path = tmp_path / "old.tflite", tmp_path / "new.tflite"
    old_path.write_bytes(blob)
    new_path.write_bytes(new)
    rng = np.random.default_rng(3)
    inputs = [rng.uniform(-1, 1, (1, 48, 240, 3)).astype(np.float32) for _ in range(3)]
    check(old_path, new_path, inputs)  # characters bit for bit
    for x in inputs:
        a, c = _outputs(old_path, x), _outputs(new_path, x)
        assert c[2].shape == (1, n + 1)
        np.testing.assert_allclose(c[2][0, :n], a[2][0], atol=1e-5)
    wider, wider_b = _head(new)
    np.testing.assert_array_equal(wider[:, :n], w)
    assert wider_b[n] == -60.0


def test_a_head_that_does_not_fit_is_refused() -> None:
    blob = MODEL.read_bytes()
    with pytest.raises(SystemExit, match="features"):
        graft(blob, np.zeros((100, 4), np.float32), np.zeros(4, np.float32))
    with pytest.raises(SystemExit, match="not a TFLite"):
        graft(bytes(64), np.zeros((120, 4), np.float32), np.zeros(4, np.float32))
    detector = MODEL.with_name("detector.tflite").read_bytes()  # no region head in it
    with pytest.raises(SystemExit, match="region"):
        graft(detector, np.zeros((120, 4), np.float32), np.zeros(4, np.float32))
