"""Model file pages are given back once XNNPACK has packed the weights (inference.file_pages)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from inference.file_pages import mapped_ranges
from inference.runtime import TFLiteModel

MODELS = Path(__file__).resolve().parents[1] / "inference" / "models"


def test_only_read_only_mappings_of_the_file_are_found() -> None:
    maps = "\n".join(
        [
            "7f0000000000-7f0000400000 r--s 00000000 08:01 1234  /m/ocr.tflite",
            "7f0000400000-7f0000401000 rw-p 00000000 08:01 1234  /m/ocr.tflite",
            "7f0000500000-7f0000600000 r--s 00000000 08:01 99    /m/ocr.tflite.old",
            "7f0000600000-7f0000700000 r-xp 00000000 08:01 5     /usr/lib/libc.so.6",
            "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0     [stack]",
            "7f0000800000-7f0000900000 r--p 00000000 08:01 77    /m/with space.tflite",
        ]
    )
    assert mapped_ranges(maps, "/m/ocr.tflite") == [(0x7F0000000000, 0x7F0000400000)]
    assert mapped_ranges(maps, "/m/with space.tflite") == [(0x7F0000800000, 0x7F0000900000)]
    assert mapped_ranges(maps, "/m/none.tflite") == []


def _resident_kb(path: Path) -> int:
    total, current = 0, None
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if fields and "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:
            current = fields[5] if len(fields) == 6 else None
        elif fields and fields[0] == "Rss:" and current == str(path):
            total += int(fields[1])
    return total


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and madvise are Linux")
def test_the_readers_file_is_not_resident_after_its_first_run_and_reads_the_same() -> None:
    model = TFLiteModel.load(MODELS, "ocr")
    path = (MODELS / model.manifest.file).resolve()
    x = np.random.default_rng(0).uniform(-1, 1, model.manifest.inputs[0].shape)
    first = model.run(x.astype(np.float32))
    assert _resident_kb(path) < 256  # the file is 3.9 MB; what a run touches again is metadata
    again = model.run(x.astype(np.float32))
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert _resident_kb(path) < 256
    model.close()
