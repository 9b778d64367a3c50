"""Retention for the copies of the store a corruption recovery moved aside.

A file that failed its integrity check is renamed ``<name>.corrupt-<UTC stamp>`` (with its
``-wal`` and ``-shm``) and kept for forensics. It still holds wrapped day keys, so retention must
reach it like the live file: each purge overwrites, in every file of every copy, the wrapped key
of each expired day, and deletes a copy outright once everything it can hold has expired (it
was moved aside at its stamp, so nothing in it is younger).

The copy is damaged, so SQLite cannot be trusted to find or delete its rows. The keys are
found in the raw bytes instead: a ``day_keys`` record is the day (``YYYY-MM-DD``), the wrapped
key (``0x01`` + 60 bytes) and the ``created_at`` time, contiguous in the cell whatever page it
sits on, in the main file, in WAL frames and in free pages alike.
"""

from __future__ import annotations

import logging
import mmap
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from drivers import files

log = logging.getLogger(__name__)

#: A day_keys cell: day, wrapped key (format byte + nonce + key + tag), then created_at.
_DAY_KEY_CELL = re.compile(rb"(\d{4}-\d\d-\d\d)(\x01[\x00-\xff]{60})(?=\d{4}-\d\d-\d\dT)")
_STAMP = re.compile(r"\.corrupt-(\d{8})T")
_SIDE = ("", "-wal", "-shm")


@dataclass
class CopiesResult:
    """What a purge did to the moved-aside copies."""

    keys_scrubbed: dict[str, int] = field(default_factory=dict)  # day -> cells overwritten
    deleted: list[str] = field(default_factory=list)


def moved_aside(path: Path) -> list[Path]:
    """The moved-aside copies of the store at ``path`` (their main files)."""
    return sorted(p for p in path.parent.glob(f"{path.name}.corrupt-*")
                  if not p.name.endswith(("-wal", "-shm")))


def moved_at(copy: Path) -> date | None:
    m = _STAMP.search(copy.name)
    if m is None:
        return None
    try:
        return datetime.strptime(m.group(1), "%Y%m%d").date()
    except ValueError:
        return None


def family(copy: Path) -> Iterator[Path]:
    """The copy's files that exist: main, ``-wal``, ``-shm``."""
    for suffix in _SIDE:
        p = Path(str(copy) + suffix)
        if p.is_file():
            yield p


def day_key_cells(data: bytes | mmap.mmap) -> Iterator[tuple[str, int, int]]:
    """(day, start, end) of every wrapped day key found in raw bytes."""
    for m in _DAY_KEY_CELL.finditer(data):
        yield m.group(1).decode(), m.start(2), m.end(2)


def scrub(path: Path, doomed: Callable[[str], bool]) -> dict[str, int]:
    """Overwrite in place the wrapped keys of the days ``doomed`` says, and fsync."""
    out: dict[str, int] = {}
    if path.stat().st_size == 0:
        return out
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), 0) as mm:
        for day, start, end in list(day_key_cells(mm)):
            if doomed(day):
                mm[start:end] = bytes(end - start)
                out[day] = out.get(day, 0) + 1
        if out:
            mm.flush()
            os.fsync(f.fileno())
    return out


def files_holding(path: Path, needles: list[bytes]) -> list[str]:
    """The files of the store at ``path`` (main, ``-wal``, ``-shm``) that hold any of
    ``needles``."""
    out = []
    for f in family(path):
        if f.stat().st_size == 0 or not needles:
            continue
        with open(f, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            if any(mm.find(n) != -1 for n in needles):
                out.append(f.name)
    return out


def purge_copies(path: Path, expired: Callable[[str], bool]) -> CopiesResult:
    """Scrub the expired days' keys from every moved-aside copy of ``path``; delete a copy
    (after scrubbing all its keys) once the day it was moved aside has expired."""
    result = CopiesResult()
    for copy in moved_aside(path):
        stamp = moved_at(copy)
        whole = stamp is not None and expired(stamp.isoformat())
        for f in family(copy):
            for day, n in scrub(f, (lambda _d: True) if whole else expired).items():
                result.keys_scrubbed[day] = result.keys_scrubbed.get(day, 0) + n
        if whole:
            for f in list(family(copy)):
                f.unlink()
            files.fsync_dir(copy.parent)
            result.deleted.append(copy.name)
    if result.keys_scrubbed or result.deleted:
        log.info("retention reached moved-aside copies",
                 extra={"days": sorted(result.keys_scrubbed), "deleted": result.deleted})
    return result
