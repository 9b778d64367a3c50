"""Run a command with the kernel's memory-deny-write-execute (``PR_SET_MDWE``, Linux 6.3+).

``python -m tests.kit.mdwe CMD...``: no writable-and-executable mapping may be created and no
mapping may gain execute permission, which is what ``MemoryDenyWriteExecute=yes`` enforces
under systemd (there with a seccomp filter, slightly stricter: any ``mprotect`` with
``PROT_EXEC`` is refused). Exit 3 if the kernel does not offer it.
"""

from __future__ import annotations

import ctypes
import os
import sys

PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1


def main() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        print(f"PR_SET_MDWE unavailable: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        raise SystemExit(3)
    os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
