"""Errors of the reading stack."""

from __future__ import annotations

from drivers.errors import VigilError


class InferenceError(VigilError):
    """Root of the inference package's errors."""


class ModelError(InferenceError, RuntimeError):
    """A model file is missing, truncated, mismatched with its manifest, or cannot be loaded."""


class FrameError(InferenceError, ValueError):
    """A frame cannot be processed (wrong shape, dtype, empty, corrupt)."""
