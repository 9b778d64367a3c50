"""`vigil bench soak`: the real daemon run for a while, its memory, open files and store over time.

The daemon (``python -m firmware.cli run``) runs on the simulation rig's config with the replay
unpaced (frames as fast as the pipeline takes them, so reads pile up faster than on a road; with
``paced``, at the camera's 10 fps as the rig's config has it) and
an HTTPS uplink to the reference ingest service (``python -m hil.ingest_server``, mutual TLS on
loopback); ``vigil status`` is asked every 10 s over the control socket, as a dashboard would.
Every ``interval_s`` the bench samples the daemon's ``VmRSS``, its open file descriptors and the
size of its store (database, WAL and shared-memory files) into a CSV, and draws the three series
into a PNG. Figures: ``rss_mb_max`` (the whole run after READY), ``rss_mb_slope_per_h`` (least
squares over the second half of the run, where start-up growth is over), the same for the fds,
reads the agency acknowledged, and the daemon's exit code after SIGTERM.

``vigil bench soak --json [--seconds S] [--out DIR] [--paced]`` (600 s by default, 45 s with
``--quick``; the CSV and PNG go to ``DIR``, a new ``vigil-soak-<stamp>`` folder in the working
directory by default).
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from firmware.benchmarks.common import envelope
from firmware.benchmarks.uplink import _Server
from firmware.console.control import request
from firmware.errors import ControlError
from hil.certs import TestPki, make_test_pki

DEFAULT_S = 600.0
QUICK_S = 45.0
STATUS_EVERY_S = 10.0
_SIM = Path(__file__).resolve().parents[1] / "config" / "defaults" / "simulation.toml"


@dataclass(frozen=True)
class Sample:
    t_s: float  # since READY (the control socket answered)
    rss_mb: float
    fds: int
    db_mb: float
    reads_sent: int


def slope_per_h(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of ``(seconds, value)`` points, in value per hour (0 for < 2)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mx) * (v - my) for t, v in points) / var * 3600.0


def summarize(samples: Sequence[Sample]) -> dict[str, Any]:
    """The bench's figures from its samples (pure)."""
    if not samples:
        raise ValueError("no samples")
    tail = samples[len(samples) // 2:]
    return {
        "rss_mb_max": round(max(s.rss_mb for s in samples), 1),
        "rss_mb_last": round(samples[-1].rss_mb, 1),
        "rss_mb_slope_per_h": round(slope_per_h([(s.t_s, s.rss_mb) for s in tail]), 2),
        "fds_max": max(s.fds for s in samples),
        "fds_slope_per_h": round(slope_per_h([(s.t_s, float(s.fds)) for s in tail]), 2),
        "db_mb_last": round(samples[-1].db_mb, 2),
        "reads_sent": samples[-1].reads_sent,
        "samples": len(samples),
    }


def config_text(pki: TestPki, endpoint: str, paced: bool = False) -> str:
    """The simulation rig's config, replay unpaced unless ``paced``, with an HTTPS uplink to
    ``endpoint``."""
    sim = _SIM.read_text()
    if "realtime = true" not in sim:
        raise RuntimeError(f"{_SIM} no longer sets realtime = true")
    return ((sim if paced else sim.replace("realtime = true", "realtime = false"))
            + f'\n[uplink]\nendpoint = "{endpoint}"\nca_file = "{pki.ca}"\n'
            f'cert_file = "{pki.client.cert}"\nkey_file = "{pki.client.key}"\n')


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def _db_mb(state: Path) -> float:
    return sum(p.stat().st_size for p in state.glob("vigil.db*")) / 2**20


def _reads_sent(status: Any) -> int | None:
    uplink = status.get("uplink") if isinstance(status, dict) else None
    sent = uplink.get("reads_sent") if isinstance(uplink, dict) else None
    return sent if isinstance(sent, int) else None


def _wait_ready(proc: subprocess.Popen[bytes], sock: Path, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited early with {proc.returncode}")
        with contextlib.suppress(ControlError):
            request(sock, "status", timeout_s=2.0)
            return
        time.sleep(0.2)
    raise RuntimeError(f"daemon's control socket did not answer within {timeout_s:.0f} s")


def soak(work: Path, seconds: float, interval_s: float, paced: bool = False
         ) -> tuple[list[Sample], int]:
    """Run the daemon under ``work`` for ``seconds``; its samples and exit code."""
    pki = make_test_pki(work / "pki", device_id="sim-1")  # the rig's camera_id
    server = _Server(pki)
    state = work / "state"
    cfg = work / "vigil.toml"
    cfg.write_text(config_text(pki, server.url, paced))
    env = dict(os.environ, STATE_DIRECTORY=str(state))
    for k in ("NOTIFY_SOCKET", "VIGIL_CONFIG", "WATCHDOG_USEC"):
        env.pop(k, None)
    samples: list[Sample] = []
    try:
        with (work / "daemon.log").open("wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "firmware.cli", "run", "--config",
                                     str(cfg)], env=env, stdout=subprocess.DEVNULL, stderr=log)
            try:
                sock = state / "control.sock"
                _wait_ready(proc, sock)
                t0 = time.monotonic()
                next_status = t0
                sent = 0
                while (now := time.monotonic()) - t0 <= seconds:
                    # Status every 10 s, as a dashboard would, and once more at the end.
                    if now >= next_status or now + interval_s - t0 > seconds:
                        next_status += STATUS_EVERY_S
                        with contextlib.suppress(ControlError):
                            sent = _reads_sent(request(sock, "status")) or sent
                    samples.append(Sample(now - t0, _rss_mb(proc.pid),
                                          len(os.listdir(f"/proc/{proc.pid}/fd")),
                                          _db_mb(state), sent))
                    time.sleep(max(0.0, interval_s - (time.monotonic() - now)))
                proc.send_signal(signal.SIGTERM)
                rc = proc.wait(timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    finally:
        server.close()
    return samples, rc


def write_csv(samples: Sequence[Sample], path: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([fl.name for fl in fields(Sample)])
        w.writerows(astuple(s) for s in samples)


def run(quick: bool = False, seconds: float | None = None, out: Path | None = None,
        paced: bool = False) -> dict[str, Any]:
    duration = seconds if seconds is not None else (QUICK_S if quick else DEFAULT_S)
    if duration <= 0:
        raise ValueError(f"seconds must be > 0, got {duration}")
    interval = 1.0 if duration <= 120 else 5.0
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = out or Path.cwd() / f"vigil-soak-{stamp}"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vigil-bench-soak-") as d:
        samples, rc = soak(Path(d), duration, interval, paced)
    csv_path, png_path = out_dir / "soak.csv", out_dir / "soak.png"
    write_csv(samples, csv_path)
    from firmware.benchmarks.plot import plot_series  # Pillow: only to draw the figure

    plot_series(png_path, [s.t_s for s in samples],
                [("RSS (MB)", [s.rss_mb for s in samples]),
                 ("open fds", [float(s.fds) for s in samples]),
                 ("store (MB)", [s.db_mb for s in samples])],
                title=f"vigil bench soak, {stamp}, {duration:.0f} s"
                + (", paced" if paced else ", unpaced"))
    return envelope("soak", {**summarize(samples), "seconds": duration, "interval_s": interval,
                             "paced": paced,
                             "exit_code": rc, "csv": str(csv_path), "png": str(png_path)})
