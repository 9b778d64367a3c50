"""`vigil bench startup`: seconds from exec to READY=1, and the daemon's steady RSS.

Runs the real daemon (`python -m firmware.cli run`) on the simulation rig in a temporary state
directory, listens on a private NOTIFY_SOCKET for READY=1, then samples VmRSS from /proc while it
processes the sample footage, and stops it with SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from firmware.benchmarks.common import envelope


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _drain(sock: socket.socket, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        with contextlib.suppress(TimeoutError):
            sock.recv(4096)


def run(quick: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        env = dict(os.environ, STATE_DIRECTORY=str(Path(tmp) / "st"))
        env.pop("VIGIL_CONFIG", None)
        return envelope("startup", measure(env, Path(tmp), 5.0 if quick else 30.0))


def measure(env: dict[str, str], tmpdir: Path, steady_s: float) -> dict[str, Any]:
    """Start the daemon with ``env`` (its config and state directory), time READY=1 on a private
    NOTIFY_SOCKET in ``tmpdir``, sample VmRSS for ``steady_s``, stop it with SIGTERM."""
    notify_path = tmpdir / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(0.2)
    env = dict(env, NOTIFY_SOCKET=str(notify_path))
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "firmware.cli", "run"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ready_s = None
    try:
        deadline = t0 + 60
        while time.monotonic() < deadline and ready_s is None:
            try:
                msg = listener.recv(4096).decode()
            except TimeoutError:
                if proc.poll() is not None:
                    raise RuntimeError(f"daemon exited early with {proc.returncode}") from None
                continue
            if "READY=1" in msg.split("\n"):
                ready_s = time.monotonic() - t0
        if ready_s is None:
            raise RuntimeError("daemon did not become ready within 60 s")
        samples = []
        end = time.monotonic() + steady_s
        while time.monotonic() < end:
            rss = _rss_mb(proc.pid)
            if rss is not None:
                samples.append(rss)
            _drain(listener, 0.5)  # keep reading notify messages, as systemd does
        t_stop = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
        stop_s = time.monotonic() - t_stop
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        listener.close()
    tail = samples[len(samples) // 2:] or samples
    return {
        "ready_s": round(ready_s, 3),
        "rss_mb": round(max(tail), 1) if tail else None,
        "rss_mb_peak": round(max(samples), 1) if samples else None,
        "steady_window_s": steady_s,
        "stop_s": round(stop_s, 3),
        "exit_code": rc,
    }
