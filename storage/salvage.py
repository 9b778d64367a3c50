"""Salvage: carry every intact row of a damaged store file into a fresh one.

Python's ``sqlite3`` has no ``.recover``; this does the part Vigil needs with SQL alone. Each
table is read in ``rowid`` order in batches; where SQLite reports damage the scan goes on row
by row, and where even a seek fails (a damaged b-tree page) it gallops forward and bisects to
the first ``rowid`` that can be sought again. A file whose 100-byte header is gone is given a
rebuilt header first (the only change ever made to the moved-aside copy).

What counts as intact is decided by the day keys, not by SQLite: a day key is carried over only
if it unwraps under this device's KEK (it stays wrapped: keys are never written in plaintext), a
read, image or alert only if its sealed field authenticates under that key (so a torn row
cannot come back as a wrong one), and an outbox item only with its read. The delivery state
travels with the item: sent stays sent, unsent stays unsent, same ids. A salvaged read whose
outbox item was lost is queued again (the server deduplicates by read id: at least once).
The audit chain is not copied; the damaged file keeps it for forensics, and the new chain
starts with the recovery and its :class:`SalvageReport`.
"""

from __future__ import annotations

import logging
import sqlite3
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from storage import codec
from storage.crypto import Cipher, CipherSuite, associated_data
from storage.health import SalvageReport
from storage.rowmac import RowMac
from storage.schema import SCHEMA_VERSION

log = logging.getLogger(__name__)

_BATCH = 500
_MAX_ROWID = (1 << 62) - 1
#: Rowids skipped per probe while looking past a damaged page below the highest known rowid
#: (beyond it the probes gallop): small enough not to jump over the next intact leaf page.
_PROBE_STEP = 16
#: Serial types opening a ``reads`` record: NULL seq, TEXT(36) id, TEXT(10) day, BLOB(16) index.
_READ_HEADER = bytes((0x00, 12 + 2 * 36 + 1, 12 + 2 * 10 + 1, 12 + 2 * 16))
_PAGE_SIZES = (4096, 8192, 16384, 32768, 65536, 1024, 2048, 512)


class _Source:
    """The damaged file, read through SQLite, skipping what cannot be read."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.unreadable: dict[str, int] = {}
        self._top = 0  # the highest rowid seen in any table, a bound when max() fails

    def rows(self, table: str, cols: str) -> Iterator[tuple[Any, ...]]:
        """Every readable row of ``table`` as ``(rowid, *cols)``, in rowid order."""
        sql = f"SELECT rowid, {cols} FROM {table} WHERE rowid >= ? ORDER BY rowid LIMIT ?"
        start: int | None = 0  # the store's rowids start at 1
        try:
            top = int(self.conn.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0] or 0)
        except sqlite3.DatabaseError:
            top = self._top * 2 + 10_000
        while start is not None:
            try:
                batch = self.conn.execute(sql, (start, _BATCH)).fetchall()
            except sqlite3.DatabaseError:
                # Row by row up to the damage, then past it.
                try:
                    row = self.conn.execute(sql, (start, 1)).fetchone()
                except sqlite3.DatabaseError:
                    start = self._step_over(table, start, top)
                    continue
                if row is None:
                    return
                yield row
                start = int(row[0]) + 1
                continue
            if batch:
                self._top = max(self._top, int(batch[-1][0]))
            yield from batch
            if len(batch) < _BATCH:
                return
            start = int(batch[-1][0]) + 1

    def _step_over(self, table: str, start: int, top: int) -> int | None:
        """The row at or after ``start`` cannot be read: the next start worth trying."""
        self._lost(table)
        try:  # the seek works but the row's content does not (e.g. a damaged overflow page)
            nxt = self.conn.execute(
                f"SELECT rowid FROM {table} WHERE rowid >= ? ORDER BY rowid LIMIT 1", (start,)
            ).fetchone()
            return None if nxt is None else int(nxt[0]) + 1
        except sqlite3.DatabaseError:
            return self._first_seekable(table, start, top)

    def _seekable(self, table: str, at: int) -> bool:
        try:
            self.conn.execute(
                f"SELECT rowid FROM {table} WHERE rowid >= ? ORDER BY rowid LIMIT 1", (at,)
            ).fetchone()
            return True
        except sqlite3.DatabaseError:
            return False

    def _first_seekable(self, table: str, bad: int, top: int) -> int | None:
        """The smallest rowid after ``bad`` where a seek works again: probing every
        :data:`_PROBE_STEP` rowids up to ``top``, galloping beyond, then bisecting back."""
        step = 1
        while True:
            probe = bad + step
            if probe > _MAX_ROWID:
                return None
            if self._seekable(table, probe):
                break
            bad = probe
            step = min(step * 2, _PROBE_STEP) if probe < top else step * 2
        good = probe
        while good - bad > 1:
            mid = (bad + good) // 2
            if self._seekable(table, mid):
                good = mid
            else:
                bad = mid
        return good

    def _lost(self, table: str) -> None:
        self.unreadable[table] = self.unreadable.get(table, 0) + 1

    def has_column(self, table: str, column: str) -> bool:
        try:
            return any(r[1] == column
                       for r in self.conn.execute(f"PRAGMA table_info({table})").fetchall())
        except sqlite3.DatabaseError:
            return False

    def all_or_nothing(self, table: str, cols: str) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(f"SELECT {cols} FROM {table}").fetchall()
        except sqlite3.DatabaseError:
            self._lost(table)
            return []


def _varint(b: bytes, i: int) -> tuple[int, int]:
    v = 0
    for k in range(9):
        c = b[i + k]
        if k == 8:
            return (v << 8) | c, i + 9
        v = (v << 7) | (c & 0x7F)
        if c < 0x80:
            return v, i + k + 1
    raise ValueError("varint")


def _record(b: bytes) -> list[Any]:
    """Decode an SQLite record (NULL, integers, text and blobs only: all this schema uses)."""
    hlen, i = _varint(b, 0)
    types = []
    while i < hlen:
        t, i = _varint(b, i)
        types.append(t)
    out: list[Any] = []
    pos = hlen
    for t in types:
        if t == 0:
            out.append(None)
        elif 1 <= t <= 6:
            n = (1, 2, 3, 4, 6, 8)[t - 1]
            out.append(int.from_bytes(b[pos : pos + n], "big", signed=True))
            pos += n
        elif t in (8, 9):
            out.append(t - 8)
        elif t >= 12:
            n = (t - 12) // 2
            raw = b[pos : pos + n]
            if len(raw) != n:
                raise ValueError("short record")
            out.append(raw if t % 2 == 0 else raw.decode())
            pos += n
        else:
            raise ValueError(f"serial type {t}")
    return out


def raw_read_rows(src: Path, page_size: int) -> Iterator[tuple[int, list[Any]]]:
    """(rowid, columns) of every cell of every table-leaf page of the file and its WAL that
    decodes as a ``reads`` row, whatever SQLite thinks of the page around it. Cells that spill
    to overflow pages are skipped (a read's sealed payload fits in a page)."""
    pages: list[bytes] = []
    try:
        data = src.read_bytes()
        pages += [data[o : o + page_size] for o in range(page_size, len(data), page_size)]
        wal = Path(str(src) + "-wal").read_bytes() if Path(str(src) + "-wal").exists() else b""
        frame = 24 + page_size
        pages += [wal[o + 24 : o + frame] for o in range(32, len(wal) - frame + 1, frame)]
    except OSError:
        return
    max_local = page_size - 35
    for page in pages:
        if len(page) < page_size:
            continue
        if page[0] != 0x0D:  # a torn page header: look for the cells themselves
            yield from _headerless_cells(page, max_local)
            continue
        ncells = int.from_bytes(page[3:5], "big")
        for k in range(min(ncells, page_size // 4)):
            try:
                ptr = int.from_bytes(page[8 + 2 * k : 10 + 2 * k], "big")
                plen, i = _varint(page, ptr)
                rowid, i = _varint(page, i)
                if plen > max_local or i + plen > page_size:
                    continue
                cols = _record(page[i : i + plen])
            except (ValueError, IndexError, UnicodeDecodeError):
                continue
            if len(cols) in (5, 6) and isinstance(cols[1], str) and isinstance(cols[4], bytes):
                yield rowid, cols


def _headerless_cells(page: bytes, max_local: int) -> Iterator[tuple[int, list[Any]]]:
    """Cells of a ``reads`` leaf whose page header and cell pointers are gone: every record
    header that starts like a read's (NULL rowid alias, 36-character uuid, 10-character day,
    16-byte blind index), tried with each length/rowid varint width before it.
    Authentication later rejects anything misparsed."""
    at = page.find(_READ_HEADER, 3) - 1
    while at >= 2:
        for start in range(max(0, at - 6), at):
            try:
                plen, i = _varint(page, start)
                rowid, i = _varint(page, i)
                if i != at or plen > max_local or at + plen > len(page):
                    continue
                cols = _record(page[at : at + plen])
            except (ValueError, IndexError, UnicodeDecodeError):
                continue
            if len(cols) in (5, 6) and isinstance(cols[1], str) and isinstance(cols[4], bytes):
                yield rowid, cols
                break
        at = page.find(_READ_HEADER, at + 2) - 1


def salvage(src: Path, dst: sqlite3.Connection, suite: CipherSuite,
            row_mac: RowMac | None = None) -> SalvageReport:
    """Copy every intact row of the damaged store ``src`` into the fresh, migrated ``dst``.

    With ``row_mac``, an outbox row of a schema-3 file whose MAC fails is not carried (its item
    is queued again, unsent: delivered at least once rather than trusted as sent), counted as
    ``tampered_rows``. An alert row is carried only if its sealed payload names its read.

    Runs inside one transaction on ``dst``. Never raises for damage: what cannot be read is
    counted in the report. Raises only if ``dst`` cannot be written.
    """
    t0 = time.perf_counter()
    conn, rebuilt = _open_damaged(src)
    if conn is None:
        return _report({}, rebuilt=rebuilt, unreadable={"file": 1}, t0=t0)
    source = _Source(conn, src)
    try:
        counts = _copy(source, dst, suite, row_mac)
    finally:
        conn.close()
    return _report(counts, rebuilt=rebuilt, unreadable=source.unreadable, t0=t0)


def _report(
    c: dict[str, int], *, rebuilt: bool, unreadable: dict[str, int], t0: float
) -> SalvageReport:
    g = c.get
    return SalvageReport(
        reads=g("reads", 0),
        unsent_reads=g("unsent_reads", 0),
        images=g("images", 0),
        alerts=g("alerts", 0),
        day_keys=g("day_keys", 0),
        lost_reads=g("lost_reads", 0),
        lost_unsent_reads=g("lost_unsent_reads", 0),
        lost_images=g("lost_images", 0),
        lost_alerts=g("lost_alerts", 0),
        lost_day_keys=g("lost_day_keys", 0),
        unreadable_ranges=dict(unreadable),
        header_rebuilt=rebuilt,
        duration_s=time.perf_counter() - t0,
        tampered_rows=g("tampered_rows", 0),
    )


def _copy(src: _Source, dst: sqlite3.Connection, suite: CipherSuite,
          row_mac: RowMac | None) -> dict[str, int]:
    c = dict.fromkeys(
        ("reads", "unsent_reads", "images", "alerts", "day_keys", "lost_reads",
         "lost_unsent_reads", "lost_images", "lost_alerts", "lost_day_keys", "tampered_rows"),
        0,
    )
    mac = row_mac if row_mac is not None and src.has_column("outbox", "mac") else None
    ciphers: dict[str, Cipher] = {}
    dst.execute("BEGIN IMMEDIATE")
    try:
        for _, day, wrapped, created_at in src.rows("day_keys", "day, wrapped, created_at"):
            try:
                ciphers[day] = suite.day_cipher(day, bytes(wrapped))
            except Exception:  # noqa: BLE001 - a torn wrapped key is a lost day, not a crash
                c["lost_day_keys"] += 1
                continue
            dst.execute(
                "INSERT OR IGNORE INTO day_keys(day, wrapped, created_at) VALUES (?, ?, ?)",
                (day, bytes(wrapped), created_at),
            )
            c["day_keys"] += 1
        reads: dict[str, int] = {}  # read_id -> seq
        bad_reads: set[str] = set()
        for _, seq, rid, day, idx, payload in src.rows(
            "reads", "seq, read_id, day, plate_idx, payload"
        ):
            if _opens(ciphers.get(day), payload, ("reads", "payload", rid), rid):
                dst.execute(
                    "INSERT OR IGNORE INTO reads(seq, read_id, day, plate_idx, payload)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (seq, rid, day, bytes(idx), bytes(payload)),
                )
                reads[rid] = seq
            else:
                bad_reads.add(rid)
        if src.unreadable.get("reads"):  # rows SQLite would not give: read the leaf pages
            page_size = int(src.conn.execute("PRAGMA page_size").fetchone()[0])
            for seq, cols in raw_read_rows(src.path, page_size):  # 6 columns from schema 2
                _, rid, day, idx, payload = cols[:5]
                if rid in reads or not isinstance(day, str) or not isinstance(idx, bytes):
                    continue
                if _opens(ciphers.get(day), payload, ("reads", "payload", rid), rid):
                    dst.execute(
                        "INSERT OR IGNORE INTO reads(seq, read_id, day, plate_idx, payload)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (seq, rid, day, idx, payload),
                    )
                    reads[rid] = seq
                    bad_reads.discard(rid)
        for _, seq, rid, kind, day, data in src.rows("images", "seq, read_id, kind, day, data"):
            if rid in reads and _opens(ciphers.get(day), data, ("images", kind, rid), None):
                dst.execute(
                    "INSERT OR IGNORE INTO images(seq, read_id, kind, day, data)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (seq, rid, kind, day, bytes(data)),
                )
                c["images"] += 1
            else:
                c["lost_images"] += 1
        alerts: dict[str, tuple[str, str, int, int]] = {}  # alert_id -> read_id, day, prio, seq
        alert_refs: set[str] = set()
        for _, seq, aid, rid, day, prio, payload in src.rows(
            "alerts", "seq, alert_id, read_id, day, priority, payload"
        ):
            alert_refs.add(rid)
            if rid in reads and _opens(ciphers.get(day), payload, ("alerts", "payload", aid), rid):
                dst.execute(
                    "INSERT OR IGNORE INTO alerts(seq, alert_id, read_id, day, priority, payload)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (seq, aid, rid, day, prio, bytes(payload)),
                )
                alerts[aid] = (rid, day, prio, seq)
            else:
                c["lost_alerts"] += 1
        queued: set[str] = set()
        lost: dict[str, bool] = dict.fromkeys(bad_reads | alert_refs - set(reads), False)
        for row in src.rows(
            "outbox",
            "item_id, kind, read_id, day, rank, priority, created_seq, attempts, sent_at,"
            " failed_reason" + (", mac" if mac is not None else ""),
        ):
            if mac is not None and not mac.outbox_ok((*row[1:8], *row[9:11]), row[11]):
                c["tampered_rows"] += 1  # its state is not trusted: the item is queued again
                continue
            row = row[:11]
            item_id, kind, rid, sent_at = row[1], row[2], row[3], row[9]
            known = rid in reads and (kind == "read" or item_id in alerts)
            if not known:
                if kind == "read":
                    lost[rid] = lost.get(rid, False) or sent_at is None
                continue
            dst.execute(
                "INSERT OR IGNORE INTO outbox(item_id, kind, read_id, day, rank, priority,"
                " created_seq, attempts, sent_at, failed_reason)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row[1:],
            )
            queued.add(item_id)
            if kind == "read" and sent_at is None:
                c["unsent_reads"] += 1
        for rid, seq in reads.items():  # the outbox item was lost: deliver again
            if rid not in queued:
                day = dst.execute("SELECT day FROM reads WHERE read_id = ?", (rid,)).fetchone()[0]
                dst.execute(
                    "INSERT INTO outbox(item_id, kind, read_id, day, rank, priority, created_seq)"
                    " VALUES (?, 'read', ?, ?, 1, 0, ?)",
                    (rid, rid, day, seq),
                )
                c["unsent_reads"] += 1
        for aid, (rid, day, prio, seq) in alerts.items():
            if aid not in queued:
                dst.execute(
                    "INSERT INTO outbox(item_id, kind, read_id, day, rank, priority, created_seq)"
                    " VALUES (?, 'alert', ?, ?, 0, ?, ?)",
                    (aid, rid, day, prio, seq),
                )
        for day, name, value in src.all_or_nothing("counters", "day, name, value"):
            dst.execute(
                "INSERT OR REPLACE INTO counters(day, name, value) VALUES (?, ?, ?)",
                (day, name, value),
            )
        dst.execute("COMMIT")
    except BaseException:
        if dst.in_transaction:
            dst.execute("ROLLBACK")
        raise
    c["reads"], c["alerts"] = len(reads), len(alerts)
    c["lost_reads"] = len(lost)
    c["lost_unsent_reads"] = sum(1 for unsent in lost.values() if unsent)
    return c


def _opens(cipher: Cipher | None, sealed: Any, ad: tuple[str, str, str], rid: str | None) -> bool:
    """Whether a sealed field authenticates (and, for a read, holds that read)."""
    if cipher is None or not isinstance(sealed, bytes):
        return False
    try:
        plain = cipher.open(sealed, associated_data(*ad))
        return rid is None or codec.from_json(plain).get("read_id") == rid
    except Exception:  # noqa: BLE001 - anything that does not open is not intact
        return False


# ---------------------------------------------------------------------- opening the damaged file


def _open_damaged(src: Path) -> tuple[sqlite3.Connection | None, bool]:
    """A read-only-minded connection to the damaged file, rebuilding its header if it is gone.
    Returns (connection or None if nothing can be read, whether the header was rebuilt)."""
    conn = _try_open(src)
    if conn is not None:
        return conn, False
    if not src.exists() or src.stat().st_size < 512:
        return None, False
    with open(src, "r+b") as f:
        original = f.read(100)
        for page_size in _candidate_page_sizes(src):
            f.seek(0)
            f.write(_header(page_size, src.stat().st_size))
            f.flush()
            conn = _try_open(src)
            if conn is not None:
                log.warning("rebuilt the header of a damaged store", extra={"page": page_size})
                return conn, True
        f.seek(0)
        f.write(original)
    return None, False


def _try_open(src: Path) -> sqlite3.Connection | None:
    try:
        conn = sqlite3.connect(str(src), isolation_level=None, check_same_thread=False)
    except sqlite3.DatabaseError:
        return None
    try:
        conn.execute("PRAGMA query_only = ON")
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "reads" in names and "day_keys" in names:
            return conn
    except sqlite3.DatabaseError:
        pass
    conn.close()
    return None


def _candidate_page_sizes(src: Path) -> list[int]:
    """The WAL header names the page size; else the usual ones, the store's default first."""
    sizes: list[int] = []
    try:
        with open(str(src) + "-wal", "rb") as f:
            head = f.read(12)
        if len(head) == 12:
            sizes.append(struct.unpack(">I", head[8:12])[0])
    except OSError:
        pass
    return [s for s in dict.fromkeys([*sizes, *_PAGE_SIZES]) if s in _PAGE_SIZES]


def _header(page_size: int, file_size: int) -> bytes:
    """A 100-byte SQLite header good enough to read the b-trees (freelist forgotten)."""
    h = bytearray(100)
    h[0:16] = b"SQLite format 3\x00"
    struct.pack_into(">H", h, 16, 1 if page_size == 65536 else page_size)
    h[18], h[19], h[20], h[21], h[22], h[23] = 2, 2, 0, 64, 32, 32
    struct.pack_into(">I", h, 24, 1)  # file change counter
    struct.pack_into(">I", h, 28, file_size // page_size)  # size in pages
    struct.pack_into(">I", h, 40, 1)  # schema cookie
    struct.pack_into(">I", h, 44, 4)  # schema format
    struct.pack_into(">I", h, 56, 1)  # UTF-8
    struct.pack_into(">I", h, 60, SCHEMA_VERSION)
    struct.pack_into(">I", h, 92, 1)  # version-valid-for = change counter
    struct.pack_into(">I", h, 96, sqlite3.sqlite_version_info[0] * 1_000_000)
    return bytes(h)
