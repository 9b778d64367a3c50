"""``vigil read`` end to end through ``run(args)``: folders, nested files, a corrupt file, video."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from inference import batch_read

DATA = Path(__file__).resolve().parent / "data" / "detector"
FRAMES = json.loads((DATA / "frames.json").read_text())
DAY = "romanian-lp-robertlucian-00088.jpg"
NIGHT = "romanian-lp-robertlucian-00425.jpg"


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    batch_read.add_arguments(p)
    return p.parse_args(list(argv))


def _records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    (root / "nested" / "deeper").mkdir(parents=True)
    shutil.copy(DATA / DAY, root / "day.jpg")
    # Same scene at another size and aspect: boxes must come back in its own pixels.
    img = cv2.imread(str(DATA / NIGHT))
    cv2.imwrite(str(root / "nested" / "deeper" / "night.png"), cv2.resize(img, (960, 540)))
    (root / "nested" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (root / "notes.txt").write_text("not an image, skipped when walking a folder")
    return root


def test_folder_with_nested_and_corrupt_files(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    rc = batch_read.run(_args("--jsonl", str(out), str(folder)))
    assert rc == 1  # one file failed, the rest were read
    recs = {r["image"]: r for r in _records(out)}
    assert set(recs) == {"day.jpg", "nested/broken.jpg", "nested/deeper/night.png"}
    assert "error" in recs["nested/broken.jpg"]
    day = recs["day.jpg"]
    assert isinstance(day["ms"], float) and day["ms"] > 0
    plates = day["plates"]
    assert isinstance(plates, list) and plates
    truth = FRAMES[DAY]["plates"][0]
    best = max(plates, key=lambda p: _iou(p["box"], truth))
    assert _iou(best["box"], truth) >= 0.5
    assert best["text"] and 0.0 <= best["confidence"] <= 1.0
    assert len(best["candidates"][0]["text"]) == len(best["text"])
    assert "region" in best
    night = recs["nested/deeper/night.png"]["plates"]
    truth = [v * 0.75 for v in FRAMES[NIGHT]["plates"][0]]
    assert any(_iou(p["box"], truth) >= 0.5 for p in night)


def test_all_good_files_exit_zero_and_country_option(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    rc = batch_read.run(
        _args("--jsonl", str(out), "--country", "eu", "--top-n", "3", str(folder / "day.jpg"))
    )
    assert rc == 0
    (rec,) = _records(out)
    assert rec["image"] == str(folder / "day.jpg")
    assert all(len(p["candidates"]) <= 3 for p in rec["plates"])


def test_missing_file_is_an_error_entry(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    rc = batch_read.run(_args("--jsonl", str(out), str(tmp_path / "nope.jpg")))
    assert rc == 1
    (rec,) = _records(out)
    assert rec["error"] == "no such file"


def test_video_every_nth_frame(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    frame = cv2.imread(str(DATA / DAY))
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (1280, 720))
    assert w.isOpened()
    for i in range(5):
        w.write(np.roll(frame, i * 4, axis=1))
    w.release()
    out = tmp_path / "out.jsonl"
    rc = batch_read.run(_args("--jsonl", str(out), "--every", "2", str(video)))
    assert rc == 0
    recs = _records(out)
    assert [r["image"] for r in recs] == [f"{video}#0", f"{video}#2", f"{video}#4"]
    assert all(r["plates"] for r in recs)


def test_unreadable_video_is_an_error_entry(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    out = tmp_path / "out.jsonl"
    assert batch_read.run(_args("--jsonl", str(out), str(bad))) == 1
    (rec,) = _records(out)
    assert "error" in rec


def test_bad_model_dir_fails_before_reading(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    rc = batch_read.run(_args("--jsonl", str(out), "--model-dir", str(tmp_path), str(tmp_path)))
    assert rc == 2
