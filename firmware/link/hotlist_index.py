"""A hotlist's compact matcher index: sorted, encrypted blocks on disk, a few KB in memory.

A million entries held as Python strings cost 150-190 MB of resident memory (the daemon's whole
budget is 150 MB), so the index lives in a file next to the store and is read per lookup:

* every entry is one text line ``canon<TAB>plate<TAB>reason<TAB>priority<TAB>id<TAB>region``,
  where ``canon`` is the plate in confusion-class form (``inference.hotlist_matcher``);
* lines are sorted by ``canon`` and cut into blocks of about :data:`BLOCK_BYTES` (a run of one
  ``canon`` is never cut), each AES-256-GCM sealed with the list's name, version and block
  number as associated data, so blocks cannot be swapped, reordered or replayed between files;
* a sealed trailer holds the first ``canon`` of every block (the fences), their offsets, the
  reasons, the list's version, issue and expiry times, and a digest of the plaintext.

A lookup bisects the fences in memory, reads one block with ``pread`` (the page cache holds the
file, not the process), opens it and finds the key with ``str.find``: tens of microseconds,
about the cost of the all-in-memory index it replaces. Resident memory for 1M entries is the
fence list (~6,000 short strings) plus a small cache of open blocks.

Building sorts fixed-width columns with numpy (imported here only; it is already in the daemon
through OpenCV), so a 1M-entry build peaks near 100 MB over the process rather than the ~380 MB
of one Python object per entry. :class:`CompactMatcher` is ``HotlistMatcher`` over these
indexes: the same rules, the same results.
"""

from __future__ import annotations

import hashlib
import json
import os
from array import array
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from hashlib import blake2b
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from drivers import files
from firmware.link.hotlist_doc import PLATE_MAX, HotlistUpdateError, ParseStats, Row
from inference.hotlist_matcher import ConfusionTable, HotlistEntry, HotlistMatcher, MatcherSettings

BLOCK_BYTES = 4096
_MAGIC = b"VHX1"
_TRAILER = 16  # 8-byte header offset, 4-byte header length, magic
_CACHE_BLOCKS = 16
_ROW_SHIFT = 24  # a row number is block << 24 | the line's offset in the block
_MAX_BLOCK = (1 << _ROW_SHIFT) - 1


class HotlistStorageError(HotlistUpdateError, OSError):
    """The index file cannot be read back (wrong key, tampered, truncated)."""


@dataclass(frozen=True)
class IndexMeta:
    """What the sealed trailer says about the list."""

    name: str
    version: int
    issued_at: datetime
    expires_at: datetime
    entries: int
    deltas: int  # deltas applied since the last full list
    digest: str  # SHA-256 of the sorted plaintext lines: equal digests, equal lists
    refused: int  # rows refused by the charset and length rules while building


def _aad(name: str, version: int, block: int) -> bytes:
    return f"{name}\0{version}\0{block}".encode()


def _trailer_aad(name: str) -> bytes:
    # Not the version: it is read from the trailer. A whole older file put back is caught by
    # the version floor the store keeps (firmware.link.hotlists).
    return f"{name}\0trailer".encode()


def build_index(
    path: Path, key: bytes, name: str, version: int, issued_at: datetime, expires_at: datetime,
    rows: Iterable[Row], table: ConfusionTable, *, deltas: int = 0,
    stats: ParseStats | None = None,
) -> IndexMeta:
    """Write the index of ``rows`` (a plate listed twice keeps its last row) to ``path``
    atomically (temp file, fsync, rename, directory fsync)."""
    import numpy as np  # only while building: already loaded in the daemon through OpenCV

    width = PLATE_MAX
    plates, canons, tails = bytearray(), bytearray(), bytearray()
    offs = array("Q", [0])
    reasons: dict[str, int] = {}
    canon = table.canon
    for r in rows:
        plates += r.plate.encode().ljust(width, b"\0")
        canons += canon(r.plate).encode().ljust(width, b"\0")
        tails += (f"{reasons.setdefault(r.reason, len(reasons))}\t{r.priority}\t"
                  f"{r.entry_id or ''}\t{r.region or ''}").encode()
        offs.append(len(tails))
    n = len(offs) - 1
    refused = stats.refused if stats is not None else 0  # rows refused while ``rows`` ran
    pcol = np.frombuffer(bytes(plates), dtype=f"S{width}")
    del plates
    ccol = np.frombuffer(bytes(canons), dtype=f"S{width}")
    del canons
    order = np.lexsort((np.arange(n), pcol, ccol))  # by canon, then plate, then arrival
    if n:
        sp = pcol[order]
        keep = np.ones(n, dtype=bool)
        keep[:-1] = sp[:-1] != sp[1:]  # the last row of each plate
        order = order[keep]
        del sp, keep
    aead = AESGCM(key)
    filt = _Filter.empty(_filter_key(key, name), len(order))
    fences = bytearray()  # the first canon of each block, PLATE_MAX bytes each
    offsets = array("Q")
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            block: list[bytes] = []
            size = 0
            prev = b""
            row_no = 0

            def flush() -> None:
                nonlocal block, size
                data = b"".join(block)
                digest.update(data)
                nonce = os.urandom(12)
                offsets.append(out.tell())
                out.write(nonce + aead.encrypt(nonce, data,
                                               _aad(name, version, len(offsets) - 1)))
                fences.extend(block[0].split(b"\t", 1)[0].ljust(PLATE_MAX, b"\0"))
                block, size = [], 0

            step = 65536
            for lo in range(0, len(order), step):
                for i in order[lo:lo + step].tolist():
                    c = ccol[i]
                    if size >= BLOCK_BYTES and c != prev:
                        flush()
                    if size > _MAX_BLOCK - 1024:
                        # One confusion class holding ~16 MB of plates: not a real list.
                        raise HotlistStorageError("too many entries share one confusion form")
                    if c != prev:
                        filt.add(c)
                    line = b"%s\t%s\t%s\n" % (c, pcol[i], tails[offs[i]:offs[i + 1]])
                    block.append(line)
                    size += len(line)
                    prev = c
                    row_no += 1
            if block:
                flush()
            offsets.append(out.tell())
            out.write(filt.bits)  # right after the last block
            head = json.dumps({
                "name": name, "version": version, "issued_at": issued_at.isoformat(),
                "expires_at": expires_at.isoformat(), "entries": row_no, "deltas": deltas,
                "refused": refused, "digest": digest.hexdigest(), "reasons": list(reasons),
                "blocks": len(offsets) - 1, "filter_lines": filt.lines,
                "filter_sha256": hashlib.sha256(filt.bits).hexdigest(),
            }).encode() + b"\n" + bytes(fences) + offsets.tobytes()
            nonce = os.urandom(12)
            sealed = nonce + aead.encrypt(nonce, head, _trailer_aad(name))
            pos = out.tell()
            out.write(sealed + pos.to_bytes(8, "big") + len(sealed).to_bytes(4, "big") + _MAGIC)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    files.fsync_dir(path.parent)
    return IndexMeta(name, version, issued_at, expires_at, row_no, deltas, digest.hexdigest(),
                     refused)


def _filter_key(key: bytes, name: str) -> bytes:
    return hashlib.blake2b(b"vigil hotlist filter\0" + name.encode(), key=key,
                           digest_size=32).digest()


class _Filter:
    """A keyed, blocked Bloom filter of the canon keys (10 bits per key, 4 bits set in one
    64-byte line): a lookup whose key is surely absent reads 64 bytes instead of a block. Most
    keys of a partial read are absent, so this is what keeps them fast. The positions come from
    a keyed hash, so the bits on the card say nothing about which plates are listed."""

    LINE = 64

    def __init__(self, key: bytes, lines: int, bits: bytearray) -> None:
        self._key = key
        self.lines = lines
        self.bits = bits

    @classmethod
    def empty(cls, key: bytes, n_keys: int) -> _Filter:
        lines = max(1, -(-n_keys * 10 // (cls.LINE * 8)))
        return cls(key, lines, bytearray(lines * cls.LINE))

    def slots(self, canon: bytes) -> tuple[int, list[int]]:
        """The filter line of ``canon`` and the four bit numbers in it."""
        h = hashlib.blake2b(canon, key=self._key, digest_size=16).digest()
        x = int.from_bytes(h[8:], "little")
        return (int.from_bytes(h[:8], "little") % self.lines,
                [(x >> (9 * j)) & 511 for j in range(4)])

    def add(self, canon: bytes) -> None:
        line, bits = self.slots(canon)
        base = line * self.LINE
        for b in bits:
            self.bits[base + (b >> 3)] |= 1 << (b & 7)


class _Fences:
    """The first canon of each block, fixed-width in one bytes object (bisectable)."""

    def __init__(self, blob: bytes) -> None:
        self._blob = blob

    def __len__(self) -> int:
        return len(self._blob) // PLATE_MAX

    def __getitem__(self, i: int) -> str:
        return self._blob[i * PLATE_MAX:(i + 1) * PLATE_MAX].rstrip(b"\0").decode()


class _Plates:
    """``plates[i]`` for the rows a lookup just returned (what ``HotlistMatcher`` reads)."""

    def __init__(self, index: BlockIndex) -> None:
        self._index = index

    def __getitem__(self, i: int) -> str:
        return self._index.row(i)[0]


class BlockIndex:
    """One list's index file, opened: the sealed trailer checked, the fences in memory.

    Duck-types the per-list index of ``HotlistMatcher`` (``name``, ``version``, ``len()``,
    ``lookup(key) -> row numbers``, ``table.plates[i]``, ``table.entry(i)``)."""

    def __init__(self, path: Path, key: bytes, name: str) -> None:
        self.path = Path(path)
        self._aead = AESGCM(key)
        self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            head, fences, offsets = self._read_trailer(name)
        except BaseException:
            os.close(self._fd)
            raise
        self.name: str = head["name"]
        self.version: int = int(head["version"])
        self.meta = IndexMeta(
            self.name, self.version, datetime.fromisoformat(head["issued_at"]),
            datetime.fromisoformat(head["expires_at"]), int(head["entries"]),
            int(head["deltas"]), str(head["digest"]), int(head["refused"]))
        self._reasons: tuple[str, ...] = tuple(head["reasons"])
        self._fences = _Fences(fences)
        self._offsets = offsets
        self._filter_key = _filter_key(key, name)
        self._filter_lines = int(head["filter_lines"])
        self._filter_at = offsets[-1]
        self._filter_sha256 = str(head["filter_sha256"])
        self._cache: OrderedDict[int, str] = OrderedDict()
        self._rows: dict[int, tuple[str, str]] = {}
        self.table = self

    def _read_trailer(self, name: str) -> tuple[dict[str, Any], bytes, array[int]]:
        size = os.fstat(self._fd).st_size
        tail = os.pread(self._fd, _TRAILER, size - _TRAILER) if size >= _TRAILER else b""
        if len(tail) != _TRAILER or tail[-4:] != _MAGIC:
            raise HotlistStorageError(f"{self.path}: not a hotlist index")
        pos, n = int.from_bytes(tail[:8], "big"), int.from_bytes(tail[8:12], "big")
        sealed = os.pread(self._fd, n, pos)
        try:
            plain = self._open_sealed(sealed, name)
            nl = plain.index(b"\n")
            head: dict[str, Any] = json.loads(plain[:nl])
            blocks = int(head["blocks"])
            fences = plain[nl + 1:nl + 1 + blocks * PLATE_MAX]
            offsets = array("Q")
            offsets.frombytes(plain[nl + 1 + blocks * PLATE_MAX:])
        except (InvalidTag, ValueError, KeyError) as e:
            raise HotlistStorageError(f"{self.path}: cannot decrypt (tampered or wrong key)"
                                      ) from e
        if head.get("name") != name or len(offsets) != blocks + 1:
            raise HotlistStorageError(f"{self.path}: holds list {head.get('name')!r}")
        return head, fences, offsets

    def _open_sealed(self, sealed: bytes, name: str) -> bytes:
        return self._aead.decrypt(sealed[:12], sealed[12:], _trailer_aad(name))

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> BlockIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self.meta.entries

    def _block(self, b: int) -> str:
        """Block ``b``'s lines, opened, as one string with a newline before every line."""
        text = self._cache.get(b)
        if text is not None:
            self._cache.move_to_end(b)
            return text
        start, end = self._offsets[b], self._offsets[b + 1]
        data = os.pread(self._fd, end - start, start)
        try:
            plain = self._aead.decrypt(data[:12], data[12:], _aad(self.name, self.version, b))
        except InvalidTag as e:
            raise HotlistStorageError(f"{self.path}: block {b} tampered") from e
        text = "\n" + plain.decode()
        self._cache[b] = text
        if len(self._cache) > _CACHE_BLOCKS:
            self._cache.popitem(last=False)
        return text

    def _may_hold(self, key: str) -> bool:
        """False when ``key`` is surely not in the list (``_Filter.slots``, unrolled: this runs
        for every key of every read)."""
        h = int.from_bytes(blake2b(key.encode(), key=self._filter_key, digest_size=16).digest(),
                           "little")
        line = (h & 0xFFFFFFFFFFFFFFFF) % self._filter_lines
        data = os.pread(self._fd, 64, self._filter_at + line * 64)
        if len(data) != 64:
            return False
        x = h >> 64
        b = x & 511
        if not data[b >> 3] >> (b & 7) & 1:
            return False
        b = x >> 9 & 511
        if not data[b >> 3] >> (b & 7) & 1:
            return False
        b = x >> 18 & 511
        if not data[b >> 3] >> (b & 7) & 1:
            return False
        b = x >> 27 & 511
        return bool(data[b >> 3] >> (b & 7) & 1)

    def lookup(self, key: str) -> list[int]:
        """Row numbers of the entries whose confusion-class form is ``key``. A row number is
        the block number and the line's offset in it (``b << 24 | offset``)."""
        if not self._may_hold(key):
            return []
        b = bisect_right(self._fences, key) - 1
        if b < 0:
            return []
        text = self._block(b)
        needle = "\n" + key + "\t"
        out = []
        if len(self._rows) > 256:  # only the rows of the read being matched are needed
            self._rows.clear()
        pos = text.find(needle)
        while pos >= 0:
            start = pos + 1
            end = text.index("\n", start)
            line = text[start:end]
            row = b << _ROW_SHIFT | start
            self._rows[row] = (line.split("\t", 2)[1], line)
            out.append(row)
            pos = text.find(needle, end)
        return out

    def row(self, i: int) -> tuple[str, str]:
        """(plate, line) of a row a lookup returned."""
        got = self._rows.get(i)
        if got is None:
            text = self._block(i >> _ROW_SHIFT)
            start = i & ((1 << _ROW_SHIFT) - 1)
            line = text[start:text.index("\n", start)]
            got = (line.split("\t", 2)[1], line)
        return got

    @property
    def plates(self) -> _Plates:
        return _Plates(self)

    def entry(self, i: int) -> HotlistEntry:
        return _entry(self.row(i)[1], self._reasons)

    def rows(self) -> Iterator[Row]:
        """Every entry, in index order (to rebuild after a delta)."""
        for b in range(len(self._fences)):
            for line in self._block(b)[1:].split("\n")[:-1]:
                e = _entry(line, self._reasons)
                yield Row(e.plate, e.reason, e.priority, e.entry_id, e.region)

    def check_all(self) -> None:
        """Open every block (a tampered or truncated file fails here, at start)."""
        digest = hashlib.sha256()
        for b in range(len(self._fences)):
            start, end = self._offsets[b], self._offsets[b + 1]
            data = os.pread(self._fd, end - start, start)
            try:
                digest.update(self._aead.decrypt(data[:12], data[12:],
                                                 _aad(self.name, self.version, b)))
            except InvalidTag as e:
                raise HotlistStorageError(f"{self.path}: block {b} tampered") from e
        if digest.hexdigest() != self.meta.digest:
            raise HotlistStorageError(f"{self.path}: content does not match its digest")
        # A cleared filter bit would hide a listed plate: the filter is checked too.
        bits = os.pread(self._fd, self._filter_lines * _Filter.LINE, self._filter_at)
        if hashlib.sha256(bits).hexdigest() != self._filter_sha256:
            raise HotlistStorageError(f"{self.path}: filter tampered")


def _entry(line: str, reasons: Sequence[str]) -> HotlistEntry:
    _, plate, r, p, eid, region = line.split("\t")
    return HotlistEntry(plate, reasons[int(r)], int(p), eid or None, region or None)


class CompactMatcher(HotlistMatcher):
    """``HotlistMatcher`` whose per-list indexes are :class:`BlockIndex` files: the matching
    rules and result order are the matcher's own (one implementation of the rules)."""

    def __init__(self, indexes: Sequence[BlockIndex], settings: MatcherSettings | None = None
                 ) -> None:
        super().__init__((), settings)
        # The matcher reads name, version, len(), lookup() and table.plates/entry() of each
        # index; BlockIndex provides exactly those.
        self._indexes = tuple(indexes)  # type: ignore[arg-type]
