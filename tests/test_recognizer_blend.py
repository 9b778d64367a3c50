"""Blending a reader's weights part of the way from its start to its tuned self (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from training.recognizer.blend import blend


def _weights(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"conv.w": rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
            "head.b": rng.normal(size=(37,)).astype(np.float32)}


def test_share_walks_from_start_to_tuned() -> None:
    start, tuned = _weights(1), _weights(2)
    at0, half, at1 = (blend(start, tuned, s) for s in (0.0, 0.5, 1.0))
    for k in start:
        np.testing.assert_array_equal(at0[k], start[k])
        np.testing.assert_allclose(at1[k], tuned[k], atol=1e-6)
        np.testing.assert_allclose(half[k], (start[k] + tuned[k]) / 2, atol=1e-6)
        assert half[k].dtype == np.float32 and half[k].shape == start[k].shape


def test_files_with_different_weights_are_refused() -> None:
    start, tuned = _weights(1), _weights(2)
    tuned["extra.w"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="different weights"):
        blend(start, tuned, 0.5)
