"""Keep the daemon's resident memory flat: glibc malloc thresholds fixed before threads start.

Frames are 2.7 MB (1280x720 RGB) and are allocated and freed many times a second. glibc raises its
mmap threshold after the first large free (up to 32 MB), so later frames land on the heap, where
freed ones leave holes the heap never gives back; and each thread gets its own arena. Fixing the
thresholds keeps every frame in its own mapping that ``free`` returns to the kernel, and caps the
arenas. Measured on the simulation rig: steady RSS 152 -> 145 MB (docs/benchmarks.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

# mallopt parameters from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
SETTINGS = ((M_MMAP_THRESHOLD, 512 * 1024), (M_TRIM_THRESHOLD, 512 * 1024), (M_ARENA_MAX, 2))


def tune() -> bool:
    """Apply :data:`SETTINGS`; False (and nothing changed) where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        log.info("malloc tuning skipped: no glibc mallopt")
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in SETTINGS)
