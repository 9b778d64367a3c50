"""Give back the resident pages of a model file the interpreter no longer reads.

The interpreter maps each model file and reads every weight once, when XNNPACK packs the weights
into its own buffers on the first run; from then on the file's weight pages are not touched, but
they stay resident and count in the daemon's RSS (3.7 MB for the reader, docs/benchmarks.md).
``madvise(MADV_DONTNEED)`` on the mapping drops them. The mapping is a read-only view of a file
whose SHA-256 was checked at load, so a page touched again is read back from the same file:
nothing changes but the resident size. Linux only; elsewhere, or when the call fails, the pages
simply stay.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)

MADV_DONTNEED = 4


def mapped_ranges(maps: str, path: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each mapping of ``path`` in a ``/proc/<pid>/maps`` text. Pure."""
    out = []
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5] == path and "w" not in fields[1]:
            start, end = (int(x, 16) for x in fields[0].split("-"))
            out.append((start, end))
    return out


def release(path: Path) -> int:
    """Drop this process's resident pages of ``path``'s read-only mappings; bytes released
    from the page tables (0 when there is nothing to do or the platform cannot)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        maps = Path("/proc/self/maps").read_text()
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
    except (OSError, AttributeError) as e:
        log.debug("model file pages kept", extra={"file": str(path), "reason": str(e)})
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    released = 0
    for start, end in mapped_ranges(maps, str(path.resolve())):
        if madvise(start, end - start, MADV_DONTNEED) == 0:
            released += end - start
        else:
            log.debug(
                "model file pages kept",
                extra={"file": str(path), "errno": ctypes.get_errno()},
            )
    return released
