"""Synthetic licence plates for training and sample footage (needs Pillow and OpenCV).

``render_plate`` draws a clean frontal plate with its canonical text; ``augment_plate`` turns it
into a roadside view and gives the plate's corners. Held out for the synthetic test set: the
font ``DejaVuSansCondensed-Bold`` (``split="test"``) and the seeds the OCR scripts reserve.
"""

from training.synth.augment import augment_plate
from training.synth.render import STYLES, SynthPlate, render_plate

__all__ = ["STYLES", "SynthPlate", "augment_plate", "render_plate"]
