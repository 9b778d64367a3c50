"""A real Mosquitto broker on loopback for the MQTT tests, benchmark and trials.

Debian's ``mosquitto`` package, installed on first use when absent (``apt-get install -y
mosquitto``, as root or with password-less sudo); :func:`mosquitto_binary` returns ``None``
with the reason in :data:`MISSING_REASON` where it cannot be installed, and the tests skip with
that reason.

The broker is configured as an agency would run it (docs/uplink.md, "MQTT"): TLS only, a client
certificate required from every client and used as its identity (``use_identity_as_username``),
no anonymous access, an ACL that confines each unit to its own topic subtree, persistence on (so
a restart keeps sessions, queued and retained messages), and a queue deep enough for a consumer
that falls behind a fleet's backlog.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from hil.certs import CertPair, TestPki

MISSING_REASON = ""

ACL = """\
# The agency's consumers read every unit's topics and publish nudges.
user agency-consumer
topic read vigil/#
topic write vigil/+/notify/#
topic write vigil/+/+/+/notify/#

# A unit (its certificate's CN is its user name): only its own subtree, and the nudges.
pattern write vigil/+/+/%u/reads
pattern write vigil/+/+/%u/alerts
pattern write vigil/+/+/%u/audit
pattern write vigil/+/+/%u/status
pattern write vigil/+/+/%u/health
pattern read vigil/+/notify/#
pattern read vigil/+/+/%u/notify/#
"""


def _find() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None


def mosquitto_binary() -> str | None:
    """The broker's path, installing Debian's package if it is missing and we may."""
    global MISSING_REASON
    found = _find()
    if found:
        return found
    prefix: list[str] = []
    if os.geteuid() != 0:
        if not shutil.which("sudo") or subprocess.run(
                ["sudo", "-n", "true"], capture_output=True, check=False).returncode != 0:
            MISSING_REASON = ("mosquitto is not installed and cannot be installed here (not root, "
                              "no password-less sudo): apt-get install -y mosquitto")
            return None
        prefix = ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "install", "-y", "-q", "mosquitto"], ["apt-get", "update", "-q"],
                ["apt-get", "install", "-y", "-q", "mosquitto"]):
        try:
            subprocess.run(prefix + cmd, capture_output=True, check=False, timeout=600, env=env)
        except (OSError, subprocess.TimeoutExpired) as e:
            MISSING_REASON = f"mosquitto could not be installed: {e}"
            return None
        found = _find()
        if found:
            return found
    MISSING_REASON = "mosquitto could not be installed with apt-get (no package source?)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Mosquitto:
    """One broker process; :meth:`start`, :meth:`restart` (graceful: persistence is written),
    :meth:`kill`. Sessions, queued and retained messages survive a restart."""

    def __init__(self, pki: TestPki, work: Path, binary: str, port: int | None = None,
                 server: CertPair | None = None) -> None:
        server = server or pki.server
        self.pki = pki
        self.work = work
        self.binary = binary
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        work.mkdir(parents=True, exist_ok=True)
        (work / "acl").write_text(ACL)
        user = pwd.getpwuid(os.geteuid()).pw_name  # as root, do not drop to "mosquitto"
        (work / "mosquitto.conf").write_text(f"""\
per_listener_settings false
allow_anonymous false
user {user}
persistence true
persistence_location {work}/
autosave_interval 60
max_queued_messages 1000000
max_inflight_messages 100
log_dest file {work}/mosquitto.log
log_type error
log_type warning
log_type notice
log_type information
acl_file {work}/acl
listener {self.port} 127.0.0.1
cafile {pki.ca}
certfile {server.cert}
keyfile {server.key}
require_certificate true
use_identity_as_username true
""")

    @property
    def url(self) -> str:
        return f"mqtts://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> None:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.work / "mosquitto.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited {self.proc.returncode}: {err}"
                                   f"{self.log()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}:\n{self.log()[-2000:]}")

    def stop(self) -> None:
        """SIGTERM: the broker writes its persistence file and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def log(self) -> str:
        p = self.work / "mosquitto.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
