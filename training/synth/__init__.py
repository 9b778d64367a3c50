"""Synthetic licence plates for training and sample footage (needs Pillow and OpenCV).

``render_plate`` draws a clean frontal plate with its canonical text; ``augment_plate`` turns it
into a roadside view and gives the plate's corners. Held out for the synthetic test set: the
font ``DejaVuSansCondensed-Bold`` (``split="test"``) and the seeds the OCR scripts reserve.

Names are imported lazily so that :mod:`training.synth.formats` (numpy only) can be used where
Pillow is not installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from training.synth.augment import augment_plate
    from training.synth.render import STYLES, SynthPlate, render_plate

__all__ = ["STYLES", "SynthPlate", "augment_plate", "render_plate"]


def __getattr__(name: str) -> Any:
    if name == "augment_plate":
        from training.synth import augment

        return augment.augment_plate
    if name in ("STYLES", "SynthPlate", "render_plate"):
        from training.synth import render

        return getattr(render, name)
    raise AttributeError(name)
