"""The fetcher seam: how bytes reach the unit. No trust decisions are made here.

One small interface, :class:`Transport` (``open(url, start)`` -> status and chunks), with two
real backends: :class:`HttpTransport` (httpx; range requests, timeouts) for a repository on any
web server or CDN, and :class:`DirTransport` for a repository copied to a USB stick. Both serve
python-tuf's ngclient through :class:`TransportFetcher`, and bundles through
:func:`download_resumable`, which resumes a cut download with an HTTP range request, never
writes past the signed length (endless data), and charges every byte to a :class:`ByteBudget`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

import httpx
from tuf.api import exceptions as tuf_exc
from tuf.ngclient import FetcherInterface

from ota.errors import BudgetExhausted, DownloadFailed

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024


@dataclass
class Response:
    """What a transport answers: 200 (whole file), 206 (from ``start``), or an error status."""

    status: int
    chunks: Iterator[bytes]
    close: Callable[[], None] = lambda: None


class Transport(Protocol):
    def open(self, url: str, start: int = 0) -> Response: ...

    def close(self) -> None: ...


class HttpTransport:
    """httpx over HTTP(S). ``read_timeout_s`` bounds a stall between chunks (slow retrieval)."""

    def __init__(self, *, connect_timeout_s: float = 10.0, read_timeout_s: float = 30.0,
                 verify: bool | str = True, user_agent: str = "vigil-ota") -> None:
        timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
        self._client = httpx.Client(timeout=timeout, verify=verify, follow_redirects=True,
                                    headers={"User-Agent": user_agent})

    def open(self, url: str, start: int = 0) -> Response:
        headers = {"Range": f"bytes={start}-"} if start else {}
        try:
            req = self._client.build_request("GET", url, headers=headers)
            resp = self._client.send(req, stream=True)
        except httpx.HTTPError as e:
            raise DownloadFailed(f"GET {url}: {e}") from e

        def chunks() -> Iterator[bytes]:
            try:
                yield from resp.iter_bytes(CHUNK_BYTES)
            except httpx.HTTPError as e:
                raise DownloadFailed(f"GET {url} broke off: {e}") from e
            finally:
                resp.close()

        return Response(resp.status_code, chunks(), resp.close)

    def close(self) -> None:
        self._client.close()


class DirTransport:
    """A repository in a local directory (a USB stick): ``file://`` URLs or plain paths."""

    def open(self, url: str, start: int = 0) -> Response:
        path = Path(unquote(urlparse(url).path)) if url.startswith("file:") else Path(url)
        try:
            f = path.open("rb")
        except FileNotFoundError:
            return Response(404, iter(()))
        except OSError as e:
            raise DownloadFailed(f"read {path}: {e}") from e
        f.seek(start)

        def chunks() -> Iterator[bytes]:
            with f:
                while block := f.read(CHUNK_BYTES):
                    yield block

        return Response(206 if start else 200, chunks(), f.close)

    def close(self) -> None:
        pass


class ByteBudget:
    """Bytes the OTA worker may pull over the uplink per period (metered cellular links).

    ``charge`` raises :class:`BudgetExhausted` once the period's allowance is used; the partial
    download stays on disk and resumes in the next period. ``limit_bytes <= 0`` means unmetered.
    """

    def __init__(self, limit_bytes: int, period_s: float, monotonic: Callable[[], float]) -> None:
        self.limit_bytes = limit_bytes
        self.period_s = period_s
        self._monotonic = monotonic
        self._start = monotonic()
        self.used_bytes = 0
        self._lock = threading.Lock()

    def charge(self, n: int) -> None:
        with self._lock:
            now = self._monotonic()
            if now - self._start >= self.period_s:
                self._start, self.used_bytes = now, 0
            if self.limit_bytes > 0 and self.used_bytes + n > self.limit_bytes:
                raise BudgetExhausted(
                    f"update byte budget spent ({self.used_bytes}/{self.limit_bytes} bytes "
                    f"this period)")
            self.used_bytes += n


class TransportFetcher(FetcherInterface):
    """python-tuf's fetcher interface over our transport (metadata downloads).

    ngclient itself caps every metadata file's length while streaming; here only transport
    errors are translated to the ones it expects.
    """

    def __init__(self, transport: Transport, budget: ByteBudget | None = None) -> None:
        self.transport = transport
        self.budget = budget

    def _fetch(self, url: str) -> Iterator[bytes]:
        try:
            resp = self.transport.open(url)
        except DownloadFailed as e:
            raise tuf_exc.DownloadError(str(e)) from e
        if resp.status != 200:
            resp.close()
            raise tuf_exc.DownloadHTTPError(f"GET {url}: HTTP {resp.status}", resp.status)
        return self._charged(resp.chunks)

    def _charged(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for c in chunks:
            if self.budget is not None:
                self.budget.charge(len(c))
            yield c


def download_resumable(transport: Transport, url: str, part: Path, length: int, *,
                       budget: ByteBudget | None = None,
                       progress: Callable[[int, int], None] | None = None,
                       stop: threading.Event | None = None) -> Path:
    """Download ``url`` into ``part``, resuming from what ``part`` already holds.

    Never writes more than ``length`` bytes (the signed length): a longer answer is cut and
    refused. A server that ignores the range (200) restarts the file from zero. The caller
    verifies hashes afterwards; this only moves bytes. Raises :class:`DownloadFailed` when the
    link breaks (the part file is kept, flushed, for the next try).
    """
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if have > length:
        part.unlink()
        have = 0
    if have == length:
        return part
    resp = transport.open(url, have)
    if resp.status == 200:
        have = 0
    elif resp.status == 416 and have:  # range not satisfiable: start over cleanly
        resp.close()
        part.unlink()
        return download_resumable(transport, url, part, length, budget=budget,
                                  progress=progress, stop=stop)
    elif resp.status != 206:
        resp.close()
        raise DownloadFailed(f"GET {url}: HTTP {resp.status}")
    if have and resp.status == 206:
        log.info("resuming download", extra={"url": url, "from_byte": have})
    with part.open("ab" if have else "wb") as f:
        try:
            for chunk in resp.chunks:
                if stop is not None and stop.is_set():
                    raise DownloadFailed("download interrupted by shutdown")
                room = length - have
                if len(chunk) > room:
                    raise DownloadFailed(f"GET {url}: more than the signed {length} bytes")
                if budget is not None:
                    budget.charge(len(chunk))
                f.write(chunk)
                have += len(chunk)
                if progress is not None:
                    progress(have, length)
        finally:
            resp.close()
            f.flush()
            os.fsync(f.fileno())
    if have != length:
        raise DownloadFailed(f"GET {url}: got {have} of {length} bytes")
    return part

