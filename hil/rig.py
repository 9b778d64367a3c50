"""The simulated rig: the real `vigil run` as a subprocess, observed from outside.

It plays the part systemd plays on a unit: a NOTIFY_SOCKET listener that records READY,
WATCHDOG and STATUS messages with their arrival times, signals, and the exit status. Reads are
collected from the daemon's stdout (JSON lines), logs from stderr.

``VIGIL_HIL_TARGET`` (a real unit reachable over ssh) is not implemented yet; see docs/status.md.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def replay_config(camera_id: str, *, loop: bool = False, realtime: bool = False,
                  state_dir: Path | None = None) -> str:
    """The sections every rig that counts reads shares: the sample footage replayed, mock pins,
    reads printed on stdout. A test appends its own sections (``[uplink]``...)."""
    state = f'state_dir = "{state_dir}"\n' if state_dir is not None else ""
    return f"""
[unit]
camera_id = "{camera_id}"
{state}site_latitude = 45.0
site_longitude = -122.0

[camera]
backend = "replay"
loop = {str(loop).lower()}
realtime = {str(realtime).lower()}

[illuminator]
pin_factory = "mock"

[logging]
reads_stdout = true
"""


def running(status: dict[str, Any]) -> bool:
    """The unit is up and well. A rig without a synchronised clock (a container, a bench unit
    with no NTP) is honestly ``degraded`` by ``clock_untrusted`` alone; that counts as well."""
    return status["state"] == "running" or (
        status["state"] == "degraded" and status.get("reasons") == ["clock_untrusted"])


@dataclass
class NotifyLog:
    messages: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def times_of(self, key: str) -> list[float]:
        with self.lock:
            return [t for t, m in self.messages if key in m.split("\n")]

    def any(self, key: str) -> bool:
        return bool(self.times_of(key))


class SimulatedRig:
    def __init__(self, tmp: Path, config_text: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.state = tmp / "state"
        self.config_path = tmp / "vigil.toml"
        if config_text is not None:
            self.config_path.write_text(config_text)
        self.env_extra = env or {}
        self.notify = NotifyLog()
        self.reads: list[dict[str, Any]] = []
        self.stderr_lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        notify_path = self.tmp / "notify.sock"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(notify_path))
        self._sock.settimeout(0.1)
        env = dict(os.environ)
        env.pop("VIGIL_CONFIG", None)
        env.update({"NOTIFY_SOCKET": str(notify_path), "STATE_DIRECTORY": str(self.state),
                    "PYTHONUNBUFFERED": "1", **self.env_extra})
        cmd = [sys.executable, "-m", "firmware.cli", "run"]
        if self.config_path.exists():
            cmd += ["--config", str(self.config_path)]
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        for target in (self._read_notify, self._read_stdout, self._read_stderr):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)

    def _read_notify(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(4096)
            except (TimeoutError, OSError):
                # Stop only once the socket is quiet: what the daemon sent before it died
                # is still read.
                if self._stop.is_set():
                    return
                continue
            with self.notify.lock:
                self.notify.messages.append((time.monotonic(), data.decode()))

    def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if obj.get("event") == "read":
                self.reads.append(obj)

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line.rstrip("\n"))

    def wait_ready(self, timeout_s: float = 60.0) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if self.notify.any("READY=1"):
                return time.monotonic() - t0
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode} before READY:\n"
                                     + "\n".join(self.stderr_lines[-30:]))
            time.sleep(0.05)
        raise AssertionError("no READY=1 within timeout:\n" + "\n".join(self.stderr_lines[-30:]))

    def wait_for(self, pred: Any, timeout_s: float, what: str) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if pred():
                return
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}:\n"
                             + "\n".join(self.stderr_lines[-30:]))

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout_s: float = 10.0) -> tuple[int, float]:
        """SIGTERM, wait; returns (exit status, seconds it took)."""
        assert self.proc is not None
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=timeout_s)
        took = time.monotonic() - t0
        self.close()
        return rc, took

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        # The notify reader ends on this flag (the pipe readers at EOF); set before joining, or
        # every close waited out the join timeout.
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        if self._sock is not None:
            self._sock.close()

    def control(self, cmd: str, **args: Any) -> Any:
        from firmware.console.control import request

        return request(self.state / "control.sock", cmd, **args)

    def open_store(self) -> Any:
        """The daemon's encrypted store, opened the way `vigil stats` would (state paths come
        from the same STATE_DIRECTORY the daemon ran with). Open it after the daemon stopped."""
        from unittest import mock

        from firmware import config
        from firmware.app.daemon import open_store

        with mock.patch.dict(os.environ, {"STATE_DIRECTORY": str(self.state)}):
            settings = config.load(self.config_path)
        return open_store(settings)

    def log_events(self, msg: str) -> list[dict[str, Any]]:
        out = []
        for line in list(self.stderr_lines):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if obj.get("msg") == msg:
                out.append(obj)
        return out
