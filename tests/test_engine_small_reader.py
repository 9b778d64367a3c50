"""Still photos: small plates and two-row plates' rows go to the small-plate reader."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from inference.detector import DetectorSettings
from inference.engine import (
    DEFAULT_MODEL_DIR,
    SMALL_PLATE_MAX_PX,
    SMALL_READER_MODEL,
    EngineSettings,
    PlateEngine,
)
from inference.engine_options import add_engine_arguments, load_engine
from inference.records import Box, Candidate, Detection, OcrResult

SMALL = Detection(Box(100, 100, 60, 15), 0.9, "plate")  # crop well under SMALL_PLATE_MAX_PX
LARGE = Detection(Box(400, 300, 200, 45), 0.9, "plate")
SQUARE = Detection(Box(800, 300, 120, 100), 0.9, "plate")  # a two-row plate's shape


class FakeDetector:
    input_hw = (384, 640)
    settings = DetectorSettings()

    def __init__(self, *found: Detection) -> None:
        self.found = list(found)

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return self.found

    def close(self) -> None:
        pass


class FixedReader:
    """Reads every crop as ``text``, surely, and notes the widths it was given."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.widths: list[int] = []

    def read(self, crop: np.ndarray) -> OcrResult:
        self.widths.append(crop.shape[1])
        t = self.text
        return OcrResult(t, 0.99, (0.99,) * len(t), (Candidate(t, 0.99),))

    def close(self) -> None:
        pass


def _engine(detector: FakeDetector, main: FixedReader, small: FixedReader | None) -> PlateEngine:
    return PlateEngine(
        detector,  # type: ignore[arg-type]
        main,  # type: ignore[arg-type]
        EngineSettings(),
        small_reader=small,  # type: ignore[arg-type]
    )


def test_a_small_plate_is_read_by_the_small_reader_a_large_one_by_the_main_reader() -> None:
    main, small = FixedReader("AB12CDE"), FixedReader("XY34ZKL")
    with _engine(FakeDetector(SMALL, LARGE), main, small) as engine:
        plates = engine.observe(np.full((720, 1280, 3), 128, np.uint8)).plates
    assert {p.detection.box: p.ocr.text for p in plates} == {
        SMALL.box: "XY34ZKL", LARGE.box: "AB12CDE",
    }
    assert small.widths and all(w < SMALL_PLATE_MAX_PX for w in small.widths)
    assert main.widths and all(w >= SMALL_PLATE_MAX_PX for w in main.widths)


def test_without_a_small_reader_the_main_reader_reads_every_plate() -> None:
    main = FixedReader("AB12CDE")
    with _engine(FakeDetector(SMALL, LARGE), main, None) as engine:
        plates = engine.observe(np.full((720, 1280, 3), 128, np.uint8)).plates
    assert [p.ocr.text for p in plates] == ["AB12CDE", "AB12CDE"]
    assert min(main.widths) < SMALL_PLATE_MAX_PX


def test_a_two_row_plates_rows_side_by_side_are_read_by_the_small_reader() -> None:
    # The main reader reads one row of it (short); the rows stitched go to the small reader.
    main, small = FixedReader("ABC"), FixedReader("ABC1D23")
    frame = np.full((720, 1280, 3), 200, np.uint8)
    with _engine(FakeDetector(SQUARE), main, small) as engine:
        (plate,) = engine.observe(frame).plates
    assert plate.ocr.text == "ABC1D23"
    stitched_width = small.widths[-1]
    assert stitched_width > SQUARE.box.w  # two rows side by side, wider than the plate


def _engine_for(*argv: str) -> PlateEngine:
    parser = argparse.ArgumentParser()
    add_engine_arguments(parser)
    return load_engine(parser.parse_args(list(argv)))


def test_still_photos_load_the_small_reader_frames_and_the_switch_do_not() -> None:
    with PlateEngine.load_still() as still:
        assert still.small_reader is not None
    with _engine_for() as photos:
        assert photos.small_reader is not None
    with _engine_for("--no-small-reader") as off:
        assert off.small_reader is None
    with _engine_for("--frames") as frames:
        assert frames.small_reader is None
    with PlateEngine.load() as daemon:
        assert daemon.small_reader is None


def test_a_models_folder_without_a_small_reader_reads_with_the_main_one(tmp_path: Path) -> None:
    for f in DEFAULT_MODEL_DIR.iterdir():
        if not f.name.startswith(SMALL_READER_MODEL + "."):
            shutil.copy(f, tmp_path / f.name)
    with PlateEngine.load_still(tmp_path) as still:
        assert still.small_reader is None


def test_the_small_reader_takes_the_main_readers_input_and_alphabet() -> None:
    main = json.loads((DEFAULT_MODEL_DIR / "ocr.json").read_text())
    small = json.loads((DEFAULT_MODEL_DIR / f"{SMALL_READER_MODEL}.json").read_text())
    assert small["inputs"] == main["inputs"]
    assert small["labels"]["alphabet"] == main["labels"]["alphabet"]
    assert small["labels"]["regions"] == main["labels"]["regions"]
    assert (DEFAULT_MODEL_DIR / small["file"]).stat().st_size < 8 * 1024 * 1024


def test_the_read_benchmark_lists_the_small_reader_where_the_folder_holds_one(
    tmp_path: Path,
) -> None:
    from firmware.benchmarks.read import model_sizes

    with_small = model_sizes(DEFAULT_MODEL_DIR)
    assert with_small[SMALL_READER_MODEL] > 0
    assert with_small["total"] == sum(v for k, v in with_small.items() if k != "total")
    for name in ("detector.tflite", "ocr.tflite"):
        shutil.copy(DEFAULT_MODEL_DIR / name, tmp_path / name)
    assert SMALL_READER_MODEL not in model_sizes(tmp_path)
