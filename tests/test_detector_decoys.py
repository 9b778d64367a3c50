"""Non-plate lettering pasted unlabelled into the detector's training crops (needs Pillow)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PIL")
from training.detector.composite import SynthPaster
from training.detector.decoys import MAX_ASPECT, render_decoy


def test_decoys_are_grey_blocks_of_lettering_within_their_aspect() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        img, alpha = render_decoy(rng)
        assert img.dtype == np.uint8 and img.ndim == 2 and alpha.shape == img.shape
        assert alpha.min() >= 0.0 and alpha.max() <= 1.0 and alpha.max() > 0.5
        h, w = img.shape
        assert w / h <= max(MAX_ASPECT.values())
        shown = img[alpha > 0.5]
        assert shown.max() - shown.min() >= 60  # lettering that stands out of its ground


def _paste(decoy_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    paster = SynthPaster(seed=1, pool=8, decoy_share=decoy_share)
    crop = np.full((256, 256), 90, np.uint8)
    no_boxes = np.zeros((0, 4), np.float32)
    out, boxes, _ = paster(crop, np.random.default_rng(seed), no_boxes, no_boxes)
    return out, boxes


def test_a_decoy_changes_the_crop_but_adds_no_plate() -> None:
    changed = 0
    for seed in range(20):
        plain, plain_boxes = _paste(0.0, seed)
        with_decoy, boxes = _paste(1.0, seed)
        assert len(boxes) == len(plain_boxes)  # labels are the plates' alone
        changed += int(not np.array_equal(plain, with_decoy))
    assert changed >= 10  # most draws find room for one (the rest fall off the crop)
