"""OTA scenarios' rig: nginx serving the repository, and the daemon under a small systemd.

:class:`Nginx` is Debian's nginx started on loopback with a throw-away config (range requests
are on by default for static files; ``limit_rate`` slows the bundles so a download can be cut
half way). :class:`SlotService` plays the parts of systemd that OTA relies on, as written in
``systemd/vigil.service`` and ``systemd/vigil.service.d/ota.conf``: before every start it runs
``vigil ota boot`` from the *committed* slot (ExecStartPre), then starts ``vigil run`` from the
*current* slot (WorkingDirectory through the link), restarts it when it exits non-zero
(``Restart=on-failure``, exit 75 forced), and never after exit 0 or 78.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ota.bundle import SKIP_NAMES, build

REPO = Path(__file__).resolve().parents[1]
APP_PACKAGES = ("firmware", "drivers", "inference", "storage", "ota")
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Nginx:
    def __init__(self, root: Path, work: Path, limit_rate: str = "0") -> None:
        self.root, self.work, self.limit_rate = root, work, limit_rate
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.access_log = work / "access.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        conf = self.work / "nginx.conf"
        temp = self.work / "tmp"
        temp.mkdir(exist_ok=True)
        conf.write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {self.work / 'nginx.pid'};
error_log {self.work / 'error.log'} warn;
events {{ worker_connections 64; }}
http {{
    log_format ranges '$status $body_bytes_sent "$http_range" $request_uri';
    access_log {self.access_log} ranges;
    client_body_temp_path {temp}; proxy_temp_path {temp}; fastcgi_temp_path {temp};
    uwsgi_temp_path {temp}; scgi_temp_path {temp};
    types {{ application/json json; }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{self.port};
        root {self.root};
        location /targets/ {{ limit_rate {self.limit_rate}; }}
    }}
}}
""")
        self.proc = subprocess.Popen([str(NGINX), "-p", str(self.work), "-c", str(conf),
                                      "-e", str(self.work / "error.log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError as e:
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read() if self.proc.stderr else b""
                    raise RuntimeError(f"nginx exited: {err!r}") from e
                time.sleep(0.05)
        raise RuntimeError("nginx did not listen")

    def kill(self) -> None:
        """Cut every connection at once (a dropped link)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def log_lines(self) -> list[str]:
        return self.access_log.read_text().splitlines() if self.access_log.exists() else []


def app_tree(dest: Path, *, version: str, sabotage: str | None = None) -> Path:
    """A copy of this checkout's application packages, reporting ``version``.

    ``sabotage``: ``"no_frames"`` (the pipeline never beats its heartbeat: READY but no frames,
    so the health gate fails), ``"crash"`` (the daemon dies at every start: a crash loop) or
    ``"hang"`` (the daemon is wedged before READY: it neither exits nor runs its own gate).
    """
    for pkg in APP_PACKAGES:
        shutil.copytree(REPO / pkg, dest / pkg, ignore=shutil.ignore_patterns(*SKIP_NAMES, "*.pyc"))
    ver = dest / "firmware" / "version.py"
    ver.write_text(ver.read_text().replace('VERSION = "0.1.0"', f'VERSION = "{version}"'))
    daemon = dest / "firmware" / "app" / "daemon.py"
    text = daemon.read_text()
    if sabotage == "crash":
        text = text.replace("def run_daemon(settings: config.Settings) -> int:\n",
                            "def run_daemon(settings: config.Settings) -> int:\n"
                            "    raise SystemExit(3)  # HIL sabotage: crash at every start\n")
    if sabotage == "hang":
        text = text.replace("def run_daemon(settings: config.Settings) -> int:\n",
                            "def run_daemon(settings: config.Settings) -> int:\n"
                            "    import time  # HIL sabotage: wedged before READY\n"
                            "    time.sleep(10**6)\n")
    daemon.write_text(text)
    if sabotage == "no_frames":
        pipe = dest / "firmware" / "pipeline" / "frame_loop.py"
        pipe.write_text(pipe.read_text().replace("self.heartbeat.beat()", "pass  # sabotage"))
    return dest


def make_bundle(tmp: Path, version: str, sabotage: str | None = None) -> Path:
    src = app_tree(tmp / f"src-{version}", version=version, sabotage=sabotage)
    out = tmp / f"vigil-{version}.vbundle"
    build(out, name="vigil", version=version, kind="app", trees={"app": src})
    return out


@dataclass
class Start:
    slot: str
    rc: int | None = None
    boot_out: str = ""


@dataclass
class SlotService:
    ota_root: Path
    config: Path
    state_dir: Path
    starts: list[Start] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("VIGIL_CONFIG", None)
        env.pop("NOTIFY_SOCKET", None)
        env.update({"STATE_DIRECTORY": str(self.state_dir), "PYTHONUNBUFFERED": "1"})
        return env

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            boot = subprocess.run(
                [sys.executable, "-m", "firmware.cli", "ota", "boot", "--root",
                 str(self.ota_root)], cwd=(self.ota_root / "committed" / "app").resolve(),
                env=self._env(), capture_output=True, text=True, timeout=60)
            cwd = (self.ota_root / "current" / "app").resolve()
            start = Start(slot=Path(os.readlink(self.ota_root / "current")).name,
                          boot_out=boot.stdout + boot.stderr)
            self.starts.append(start)
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "firmware.cli", "run", "--config", str(self.config)],
                cwd=cwd, env=self._env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                text=True)
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.lines.append(line.rstrip("\n"))
            start.rc = self.proc.wait()
            if start.rc in (0, 78) or self._stopping.is_set():
                return
            time.sleep(0.2)  # RestartSec

    def deadline_timer(self, grace_s: float = 0.0) -> bool:
        """One run of ``vigil-ota-deadline.service``: ``vigil ota overdue`` from the committed
        slot; on exit 0, ``systemctl restart vigil`` (SIGTERM, SIGKILL after TimeoutStopSec=5,
        and the loop starts the service again through the boot check). True: restarted."""
        check = subprocess.run(
            [sys.executable, "-m", "firmware.cli", "ota", "overdue", "--root",
             str(self.ota_root), "--grace-s", str(grace_s)],
            cwd=(self.ota_root / "committed" / "app").resolve(), env=self._env(),
            capture_output=True, text=True, timeout=60)
        if check.returncode != 0:
            return False
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        return True

    def control(self, cmd: str) -> Any:
        from firmware.console.control import request

        return request(self.state_dir / "control.sock", cmd)

    def status(self) -> dict[str, Any] | None:
        try:
            return self.control("status")  # type: ignore[no-any-return]
        except Exception:  # noqa: BLE001 - between restarts nothing answers
            return None

    def wait_for(self, pred: Any, timeout_s: float, what: str) -> dict[str, Any]:
        t0 = time.monotonic()
        last: dict[str, Any] | None = None
        while time.monotonic() - t0 < timeout_s:
            st = self.status()
            if st is not None:
                last = st
                if pred(st):
                    return st
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; last ota status: "
                             f"{(last or {}).get('ota')}\n" + "\n".join(self.lines[-25:]))

    def stop(self) -> None:
        self._stopping.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self._thread is not None:
            self._thread.join(timeout=20)
