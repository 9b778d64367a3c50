"""A software TPM 2.0 (``swtpm``) for the tests, started per test on loopback ports.

Debian's ``swtpm`` and ``tpm2-tools`` are installed with apt-get when absent and this process
may (root, apt-get present); the tests that need them skip, saying why, only where they cannot
be installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from storage.tpm import tools_installed

PACKAGES = ("swtpm", "tpm2-tools")


def ensure_installed() -> None:
    """Install swtpm and tpm2-tools if missing, or skip the calling test with the reason."""
    if shutil.which("swtpm") and tools_installed():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("swtpm / tpm2-tools are not installed and cannot be installed here "
                    f"(needs root and apt-get): apt-get install {' '.join(PACKAGES)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(["apt-get", "install", "-y", "-q", *PACKAGES], env=env,
                          capture_output=True, timeout=900, check=False)
    if done.returncode != 0 or not (shutil.which("swtpm") and tools_installed()):
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-2:]
        pytest.skip(f"apt-get install {' '.join(PACKAGES)} failed: {' / '.join(tail)}")


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = int(a.getsockname()[1])
        if port < 65535:
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free pair of loopback ports")


@contextmanager
def software_tpm(state_dir: Path) -> Iterator[str]:
    """Run ``swtpm`` with its state in ``state_dir``; yields the TCTI string for tpm2-tools."""
    ensure_installed()
    state_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port_pair()
    proc = subprocess.Popen(
        ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state_dir}",
         "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
         "--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1",
         "--flags", "not-need-init,startup-clear"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                    raise RuntimeError(f"swtpm did not start: {err.strip()[-300:]}") from None
                time.sleep(0.05)
        yield f"swtpm:host=127.0.0.1,port={port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
