"""`vigil bench soak`: the real daemon with an HTTPS uplink, sampled into a CSV and a PNG (a short
run here; the recorded one is in docs/benchmarks.md)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from firmware.benchmarks.plot import plot_series
from firmware.benchmarks.soak import Sample, config_text, slope_per_h, summarize
from hil.certs import make_test_pki


def test_slope_is_per_hour_and_flat_for_a_constant() -> None:
    assert slope_per_h([(0.0, 100.0), (3600.0, 110.0), (7200.0, 120.0)]) == pytest.approx(10.0)
    assert slope_per_h([(t, 5.0) for t in range(10)]) == 0.0
    assert slope_per_h([(1.0, 3.0)]) == 0.0


def test_summary_takes_the_slope_over_the_second_half() -> None:
    # Start-up growth in the first half, flat after: the slope says flat, the max says the peak.
    rss = [100.0, 120.0, 140.0, 140.0, 140.0, 140.0]
    samples = [Sample(float(i), v, 10, 1.0 + i, 2 * i) for i, v in enumerate(rss)]
    s = summarize(samples)
    assert s["rss_mb_max"] == 140.0 and s["rss_mb_slope_per_h"] == 0.0
    assert s["reads_sent"] == 10 and s["db_mb_last"] == 6.0 and s["samples"] == 6


def test_the_replay_runs_unpaced_unless_paced_and_the_uplink_is_on(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path / "pki", device_id="sim-1")
    for paced in (False, True):
        cfg = tomllib.loads(config_text(pki, "https://127.0.0.1:1", paced=paced))
        assert cfg["camera"]["realtime"] is paced
        assert cfg["uplink"]["endpoint"] == "https://127.0.0.1:1"


def test_plot_refuses_series_of_another_length(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        plot_series(tmp_path / "x.png", [0.0, 1.0], [("a", [1.0])])


def test_vigil_bench_soak_short_run(tmp_path: Path) -> None:
    out = tmp_path / "soak"
    proc = subprocess.run(
        [sys.executable, "-m", "firmware.cli", "bench", "soak", "--json", "--seconds", "20",
         "--out", str(out)], capture_output=True, text=True, timeout=220)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["exit_code"] == 0
    assert 50 < result["rss_mb_max"] < 1000
    assert isinstance(result["rss_mb_slope_per_h"], float)
    assert result["fds_max"] > 3 and result["db_mb_last"] > 0
    assert result["reads_sent"] >= 1  # the uplink delivered to the reference ingest service
    with (out / "soak.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == result["samples"] >= 15
    assert max(float(r["rss_mb"]) for r in rows) == pytest.approx(result["rss_mb_max"], abs=0.1)
    assert (out / "soak.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
