"""`vigil read` and `vigil eval` build the engine from the same options."""

from __future__ import annotations

import argparse

from inference.engine import STILL_MAX_PLATES
from inference.engine_options import FRAME_MAX_PLATES, add_engine_arguments, load_engine


def engine_for(*argv: str):  # type: ignore[no-untyped-def]
    parser = argparse.ArgumentParser()
    add_engine_arguments(parser)
    return load_engine(parser.parse_args(list(argv)))


def test_photos_by_default_and_frames_as_the_daemon_reads_them() -> None:
    with engine_for() as photos:
        assert photos.settings.text_fallback and photos.settings.plate_map
        assert photos.settings.native_windows and photos.settings.max_plates == STILL_MAX_PLATES
        assert not photos.detector.settings.window_refine
        assert photos.detector.settings.close_up_width > 0
    with engine_for("--frames") as frames:
        assert not (frames.settings.text_fallback or frames.settings.plate_map
                    or frames.settings.native_windows)
        assert frames.settings.max_plates == FRAME_MAX_PLATES
        assert frames.detector.settings.window_refine
        assert frames.detector.settings.close_up_width == 0
        assert frames.text_lines is None and frames.beside_detector is None


def test_single_passes_off_keep_the_photo_mode() -> None:
    with engine_for("--no-plate-map", "--no-text-fallback", "--no-tiles",
                    "--max-plates", "3") as e:
        assert not (e.settings.text_fallback or e.settings.plate_map or e.settings.native_windows)
        assert e.settings.max_plates == 3
        assert not e.detector.settings.window_refine
