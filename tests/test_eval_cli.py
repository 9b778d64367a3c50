"""`vigil eval` end to end on committed held-out frames: read path, JSON, montage, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data" / "eval"


def vigil(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "firmware.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("eval")
    p = vigil(
        "eval",
        str(DATA),
        "--json",
        "--montage",
        str(out / "fail.png"),
        cwd=Path(__file__).resolve().parents[1],
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout), out


def test_eval_prints_every_figure(result: tuple[dict, Path]) -> None:
    rep, _ = result
    for key in (
        "exact_read",
        "top_n",
        "det_recall_50",
        "det_recall_50_readable",
        "det_recall_70",
        "median_iou_found",
        "cer",
        "false_plates_per_image",
        "calibration_error",
        "ms_median",
        "ms_p95",
    ):
        assert key in rep
    assert rep["images"] == 4 and rep["plates"] == 6 and rep["readable"] == 5
    assert set(rep["by_width"]) <= {"<60", "60-100", "100-200", ">200"}
    assert rep["by_region"]["eu"]["plates"] == 6


def test_eval_reads_held_out_frames(result: tuple[dict, Path]) -> None:
    # Regression floor on four held-out dashcam frames (five readable plates): the reader
    # committed on 2026-12-02 reads at least two exactly and finds five of six plates.
    rep, _ = result
    assert rep["exact_read"] >= 0.4
    assert rep["det_recall_50"] >= 0.8


def test_eval_writes_a_failure_montage(result: tuple[dict, Path]) -> None:
    rep, out = result
    if rep["exact_read"] < 1.0:
        assert (out / "fail.png").stat().st_size > 1000


def test_malformed_dataset_is_refused_with_the_line(tmp_path: Path) -> None:
    shutil.copy(DATA / "labels.jsonl", tmp_path / "labels.jsonl")
    with (tmp_path / "labels.jsonl").open("a") as fh:
        fh.write('{"image": "x.jpg", "plates": [{"box": [1, 2]}]}\n')
    p = vigil("eval", str(tmp_path), cwd=tmp_path)
    assert p.returncode == 2
    assert "labels.jsonl:5" in p.stderr


def test_missing_dataset_is_refused(tmp_path: Path) -> None:
    p = vigil("eval", str(tmp_path / "nope"), cwd=tmp_path)
    assert p.returncode == 2 and "labels.jsonl" in p.stderr
