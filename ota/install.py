"""Staging a verified bundle into the inactive slot (the running slot is never touched).

An ``app`` bundle fills the slot as it is. A ``model`` bundle (``models/*.tflite`` + manifests)
replaces ``app/inference/models`` in a copy of the running application, and the resulting model
directory must pass ``check_models`` (the daemon passes the existing manifest loader) before
the slot is marked complete: a model that does not load never goes live.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ota.bundle import DEFAULT_LIMITS, SKIP_NAMES, Limits, read_manifest, unpack
from ota.errors import BundleRefused, OtaError
from ota.slotfs import SlotFS
from ota.slots import SlotState, StageDone, StageFailed, StageStart

ModelCheck = Callable[[Path], None]
#: Where an application slot keeps its models (the package data of ``inference``).
MODEL_DIR = "app/inference/models"


def stage(fs: SlotFS, state: SlotState, bundle: Path, *, check_models: ModelCheck | None = None,
          limits: Limits = DEFAULT_LIMITS) -> SlotState:
    """Unpack ``bundle`` (already verified against signed metadata) into the inactive slot."""
    manifest = read_manifest(bundle, limits)
    state, _ = fs.apply(state, StageStart(manifest.version))
    slot = fs.slot_dir(state.inactive)
    try:
        if manifest.kind == "app":
            unpack(bundle, slot, limits)
        else:
            _overlay_models(fs.slot_dir(state.active), slot, bundle, limits)
        if check_models is not None and (slot / MODEL_DIR).is_dir():
            check_models(slot / MODEL_DIR)
    except (OtaError, OSError, ValueError) as e:
        why = f"staging {manifest.version} failed: {e}"
        state, _ = fs.apply(state, StageFailed(why))
        raise BundleRefused(why) from e
    fs.mark_complete(state.inactive, manifest)
    state, _ = fs.apply(state, StageDone(manifest.version))
    return state


def _overlay_models(active: Path, slot: Path, bundle: Path, limits: Limits) -> None:
    # The running slot's app (followed if it is the adopted factory tree) is copied, never
    # linked: the overlay below must not write into the running version.
    shutil.copytree(active / "app", slot / "app", symlinks=True,
                    ignore=shutil.ignore_patterns(*SKIP_NAMES, "*.pyc"))
    with tempfile.TemporaryDirectory(dir=slot.parent) as tmp:
        unpack(bundle, Path(tmp) / "m", limits)
        src = Path(tmp) / "m" / "models"
        if not src.is_dir():
            raise BundleRefused("a model bundle must hold models/")
        dest = slot / MODEL_DIR
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(src, dest)
