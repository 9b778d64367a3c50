"""Durable file writes: the one atomic-write helper.

A file is written to a sibling temporary name with its final mode and owner, fsynced, renamed
over the old one with ``os.replace`` and its directory fsynced, so after a power cut the path
holds the old content or the new, never half of either. (``drivers`` because every layer may
import it: the store's key file, hotlists, provisioning and the OTA slots all use it.)
"""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temp(path: Path, data: bytes, mode: int, *, uid: int = -1, gid: int = -1) -> Path:
    """A fully written, fsynced sibling temp file of ``path`` with its final mode and owner.

    The caller puts it in place (``os.replace``, or ``os.link`` to never overwrite) and removes
    it on failure. ``uid``/``gid`` -1 keep the writer's. The mode is set with ``fchmod`` so the
    umask cannot decide a key file's mode.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)  # a leftover of a crashed writer with the same pid
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        os.fchmod(fd, mode)
        if uid != -1 or gid != -1:
            os.fchown(fd, uid, gid)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def write_atomic(path: Path, data: bytes, mode: int, *, uid: int = -1, gid: int = -1) -> None:
    """temp file + fsync + ``os.replace`` + directory fsync: old or new, never half."""
    tmp = write_temp(path, data, mode, uid=uid, gid=gid)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
