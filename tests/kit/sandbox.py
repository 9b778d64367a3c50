"""Run a command in an approximation of vigil.service's sandbox, without systemd.

``python -m tests.kit.sandbox CMD...`` (root, ``unshare`` from util-linux): new mount, PID and
network namespaces, and in them

* ``ProtectProc=invisible``: ``/proc`` mounted ``hidepid=invisible`` (with
  ``VIGIL_SANDBOX_PROC_SUBSET=1`` also ``subset=pid``, what ``ProcSubset=pid`` would do: the
  unit does not set it, because the TFLite runtime then stalls);
* ``PrivateDevices=yes`` + ``BindPaths=-/dev/...``: a tmpfs ``/dev`` holding the API
  pseudo-devices (null, zero, full, random, urandom, tty, pts, shm) and the unit's device list
  where the host has those nodes;
* ``IPAddressDeny=any`` + ``IPAddressAllow=localhost``: a network namespace with loopback only;
* ``MemoryDenyWriteExecute=yes``: the kernel's ``PR_SET_MDWE``, and the unit's
  ``SystemCallFilter=~@...`` deny-list as a seccomp filter (``tests.kit.mdwe``).

Exit 3 when the host cannot set this up (no ``unshare``, not root, no PR_SET_MDWE).
``RemoveIPC`` has no equivalent here (it acts when the unit's user logs out).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "vigil.service"
_PSEUDO = ("null", "zero", "full", "random", "urandom", "tty")


def unit_devices(unit: Path = UNIT) -> list[str]:
    """The device paths of the unit's ``BindPaths=`` lines (``-`` prefix dropped)."""
    out = []
    for line in unit.read_text().splitlines():
        if line.startswith("BindPaths="):
            out += [p.lstrip("-") for p in line.split("=", 1)[1].split()]
    return out


def unit_denied_groups(unit: Path = UNIT) -> list[str]:
    """The groups of the unit's ``SystemCallFilter=~...`` lines."""
    out = []
    for line in unit.read_text().splitlines():
        if line.startswith("SystemCallFilter=~"):
            out += line.split("=~", 1)[1].split()
    return out


def script(cmd: list[str], skip: frozenset[str] = frozenset()) -> str:
    """The shell run inside the namespaces; ``skip`` leaves parts out ("proc", "dev", "mdwe")
    to find which one a failure comes from."""
    lines = ["set -e", "ip link set lo up 2>/dev/null || true"]
    subset = "subset=pid," if os.environ.get("VIGIL_SANDBOX_PROC_SUBSET") == "1" else ""
    if "proc" in skip:
        lines.append("mount -t proc proc /proc")
    else:
        lines.append(f"mount -t proc -o {subset}hidepid=invisible proc /proc")
    mdwe = [] if "mdwe" in skip else [sys.executable, "-m", "tests.kit.mdwe", "--deny",
                                      ",".join(unit_denied_groups())]
    if "dev" in skip:
        return "\n".join([*lines, "exec " + shlex.join([*mdwe, *cmd])])
    lines.append("mkdir -p /tmp/.sbdev && mount -t tmpfs -o mode=755,nosuid tmpfs /tmp/.sbdev")
    for name in _PSEUDO:
        lines.append(f"touch /tmp/.sbdev/{name} && mount --bind /dev/{name} /tmp/.sbdev/{name}")
    lines += ["mkdir -p /tmp/.sbdev/pts /tmp/.sbdev/shm",
              "mount --bind /dev/pts /tmp/.sbdev/pts",
              "mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp/.sbdev/shm",
              "ln -s pts/ptmx /tmp/.sbdev/ptmx",
              "ln -s /proc/self/fd /tmp/.sbdev/fd"]
    for dev in unit_devices():
        rel = dev.removeprefix("/dev/")
        lines.append(f"if [ -e {dev} ]; then mkdir -p $(dirname /tmp/.sbdev/{rel}); "
                     f"if [ -d {dev} ]; then mkdir -p /tmp/.sbdev/{rel}; "
                     f"else touch /tmp/.sbdev/{rel}; fi; "
                     f"mount --bind {dev} /tmp/.sbdev/{rel}; fi")
    lines += ["mount --move /tmp/.sbdev /dev", "exec " + shlex.join([*mdwe, *cmd])]
    return "\n".join(lines)


def main() -> None:
    skip = frozenset(filter(None, os.environ.get("VIGIL_SANDBOX_SKIP", "").split(",")))
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        print("sandbox needs root and unshare", file=sys.stderr)
        raise SystemExit(3)
    # --kill-child: when the test stops unshare (a timeout kills it), the daemon it forked, PID 1
    # of the namespace, goes with it instead of living on adopted by the host's init.
    os.execvp("unshare", ["unshare", "--mount", "--pid", "--net", "--fork", "--kill-child",
                          "--propagation", "private", "sh", "-c", script(sys.argv[1:], skip)])


if __name__ == "__main__":
    main()
