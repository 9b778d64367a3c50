"""Run a command with the memory and system-call limits of vigil.service, without systemd.

``python -m tests.kit.mdwe [--deny @group,...] CMD...``:

* memory-deny-write-execute through the kernel (``PR_SET_MDWE``, Linux 6.3+): no
  writable-and-executable mapping may be created and no mapping may gain execute permission,
  which is what ``MemoryDenyWriteExecute=yes`` enforces under systemd (there with a seccomp
  filter, slightly stricter: any ``mprotect`` with ``PROT_EXEC`` is refused);
* ``--deny``: the system calls of those groups fail with EPERM, as ``SystemCallFilter=~...``
  with ``SystemCallErrorNumber=EPERM`` (a seccomp filter through libseccomp; the groups are
  expanded by ``systemd-analyze syscall-filter``).

Exit 3 if the kernel or the host cannot do it.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

PR_SET_NO_NEW_PRIVS = 38
PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO_EPERM = 0x00050000 | 1


def _unavailable(why: str) -> None:
    print(why, file=sys.stderr)
    raise SystemExit(3)


def expand(groups: list[str]) -> list[str]:
    """System call names of systemd's ``@groups``, nested groups included."""
    out: list[str] = []
    seen: set[str] = set()
    todo = list(groups)
    while todo:
        g = todo.pop()
        if g in seen:
            continue
        seen.add(g)
        text = subprocess.run(["systemd-analyze", "syscall-filter", g], capture_output=True,
                              text=True, check=True).stdout
        for line in text.splitlines()[1:]:
            name = line.strip()
            if not name or name.startswith("#"):
                continue
            (todo if name.startswith("@") else out).append(name)
    return sorted(set(out))


def deny(names: list[str]) -> None:
    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_rule_add.argtypes = (ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                     ctypes.c_uint)
    lib.seccomp_load.argtypes = (ctypes.c_void_p,)
    lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    for name in names:
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr < 0:
            continue  # not a system call on this architecture
        if lib.seccomp_rule_add(ctx, SCMP_ACT_ERRNO_EPERM, nr, 0) != 0:
            _unavailable(f"seccomp_rule_add({name}) failed")
    if lib.seccomp_load(ctx) != 0:
        _unavailable("seccomp_load failed")


def main() -> None:
    args = sys.argv[1:]
    groups: list[str] = []
    if args[:1] == ["--deny"]:
        groups, args = args[1].split(","), args[2:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        _unavailable(f"PR_SET_MDWE unavailable: {os.strerror(ctypes.get_errno())}")
    if groups:
        try:
            names = expand(groups)
        except (OSError, subprocess.CalledProcessError) as e:
            _unavailable(f"cannot expand {groups}: {e}")
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        try:
            deny(names)
        except OSError as e:
            _unavailable(f"libseccomp unavailable: {e}")
    os.execvp(args[0], args)


if __name__ == "__main__":
    main()
