"""HTTPS with mutual TLS to the agency: the :class:`Transport` seam, its urllib3 backend and the
uplink's errors. A request either returns a :class:`Response` or raises :class:`TransportError`
with a ``kind`` the link state understands."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlencode

from drivers.clock import Clock
from firmware.errors import FirmwareError
from firmware.uplink.settings import UplinkSettings


class UplinkError(FirmwareError):
    """Root of the uplink's errors."""


class TransportError(UplinkError, ConnectionError):
    """A request did not produce a usable answer. ``kind`` says why, for the link state and
    the log: ``timeout``, ``connect``, ``tls``, ``reset``, ``http_5xx``, ``http_4xx``,
    ``throttled``, ``protocol``, ``refused`` (a broker refused the client or a message)."""

    def __init__(self, kind: str, message: str, retry_after_s: float | None = None) -> None:
        self.kind = kind
        self.retry_after_s = retry_after_s
        super().__init__(f"{kind}: {message}")


class UplinkConfigError(UplinkError, ValueError):
    """Uplink settings that cannot work (missing certificate files, bad URL)."""


def build_ssl_context(settings: UplinkSettings) -> ssl.SSLContext:
    """Client context: trusts only the pinned agency CA, presents the device certificate,
    TLS >= 1.2, host name checked. Verification is never switched off."""
    for what, p in (("ca_file", settings.ca_file), ("cert_file", settings.cert_file),
                    ("key_file", settings.key_file)):
        if not Path(p).is_file():
            raise UplinkConfigError(f"uplink.{what}: {p} is not a file")
    # With cafile given, create_default_context loads no system roots: the CA is pinned.
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_cert_chain(settings.cert_file, settings.key_file)
    except (ssl.SSLError, OSError) as e:
        raise UplinkConfigError(f"uplink.cert_file/key_file cannot be loaded: {e}") from e
    return ctx


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    elapsed_s: float
    bytes_out: int
    bytes_in: int
    headers: Mapping[str, str] = field(default_factory=dict)


class Transport(Protocol):
    def request(
        self, method: str, path: str, body: bytes | None = None,
        headers: Mapping[str, str] | None = None, params: Mapping[str, str] | None = None,
    ) -> Response: ...

    def close(self) -> None: ...


HEADER_OVERHEAD = 250  # request line + headers, both ways, roughly; for the byte budget


def _is_tls_failure(e: BaseException) -> bool:
    seen: BaseException | None = e
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class HttpsTransport:
    """urllib3 over one kept-alive mTLS connection (one handshake, many batches).

    urllib3 rather than httpx: the same verified context and keep-alive for ~2 MB less of the
    daemon's RSS, which sits at its budget (docs/dependencies.md)."""

    def __init__(self, settings: UplinkSettings, clock: Clock) -> None:
        if not settings.endpoint.startswith("https://"):
            raise UplinkConfigError("uplink.endpoint must be an https:// URL")
        # Imported here: a unit without an HTTPS uplink never needs it.
        import urllib3
        from urllib3.connection import HTTPConnection

        self._urllib3 = urllib3
        self._clock = clock
        url = urllib3.util.parse_url(settings.endpoint)
        if not url.host:
            raise UplinkConfigError(f"uplink.endpoint has no host: {settings.endpoint}")
        self._prefix = (url.path or "").rstrip("/")
        self._pool = urllib3.HTTPSConnectionPool(
            url.host, url.port or 443,
            # One connection kept alive; a second request at the same moment gets a connection
            # of its own that is closed after it.
            maxsize=1, block=False,
            ssl_context=build_ssl_context(settings),
            timeout=urllib3.Timeout(connect=settings.connect_timeout_s, read=settings.timeout_s),
            # No retries or redirects here: the worker owns retry pacing, and a redirect off
            # the pinned endpoint is not followed. Errors come back unwrapped.
            retries=False,
            headers={"User-Agent": "vigil-uplink/1"},
            # NODELAY (urllib3's default, kept explicit): headers and body go out in separate
            # writes; with Nagle every small batch would wait for the server's delayed ACK.
            socket_options=[*HTTPConnection.default_socket_options,
                            (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )

    def request(
        self, method: str, path: str, body: bytes | None = None,
        headers: Mapping[str, str] | None = None, params: Mapping[str, str] | None = None,
    ) -> Response:
        exc = self._urllib3.exceptions
        url = self._prefix + path + (f"?{urlencode(params)}" if params else "")
        t0 = self._clock.monotonic()
        try:
            r = self._pool.urlopen(method, url, body=body, headers={
                **self._pool.headers, **(headers or {})}, redirect=False,
                preload_content=True)
        except exc.NewConnectionError as e:  # before TimeoutError: it is one in urllib3
            raise TransportError("tls" if _is_tls_failure(e) else "connect", str(e)) from e
        except exc.TimeoutError as e:
            raise TransportError("timeout", str(e) or type(e).__name__) from e
        except exc.SSLError as e:
            raise TransportError("tls", str(e)) from e
        except (exc.ProtocolError, OSError) as e:
            kind = "tls" if _is_tls_failure(e) else "reset"
            raise TransportError(kind, str(e) or type(e).__name__) from e
        except exc.HTTPError as e:
            raise TransportError("protocol", str(e)) from e
        elapsed = self._clock.monotonic() - t0
        content = r.data
        return Response(
            status=r.status,
            body=content,
            elapsed_s=elapsed,
            bytes_out=len(body or b"") + HEADER_OVERHEAD,
            bytes_in=len(content) + HEADER_OVERHEAD,
            headers={k.lower(): v for k, v in r.headers.items()},
        )

    def close(self) -> None:
        self._pool.close()
