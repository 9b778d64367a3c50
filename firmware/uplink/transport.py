"""HTTPS with mutual TLS to the agency: the :class:`Transport` seam, its httpx backend and the
uplink's errors. A request either returns a :class:`Response` or raises :class:`TransportError`
with a ``kind`` the link state understands."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

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
    """httpx over one kept-alive mTLS connection (one handshake, many batches)."""

    def __init__(self, settings: UplinkSettings, clock: Clock) -> None:
        if not settings.endpoint.startswith("https://"):
            raise UplinkConfigError("uplink.endpoint must be an https:// URL")
        # Imported here: httpx costs ~12 MB of RSS, and a unit without an uplink never needs it.
        import httpx

        self._httpx = httpx
        self._clock = clock
        ctx = build_ssl_context(settings)
        self._client = httpx.Client(
            base_url=settings.endpoint,
            # NODELAY: h11 writes headers and body separately; with Nagle every small batch
            # would wait for the server's delayed ACK (~40 ms).
            transport=httpx.HTTPTransport(
                verify=ctx,
                limits=httpx.Limits(max_connections=2, max_keepalive_connections=1),
                socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            ),
            timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
            headers={"User-Agent": "vigil-uplink/1"},
            follow_redirects=False,  # a redirect off the pinned endpoint is not followed
            trust_env=False,  # no proxy or CA bundle from the environment
        )

    def request(
        self, method: str, path: str, body: bytes | None = None,
        headers: Mapping[str, str] | None = None, params: Mapping[str, str] | None = None,
    ) -> Response:
        httpx = self._httpx
        t0 = self._clock.monotonic()
        try:
            r = self._client.request(
                method, path, content=body, headers=dict(headers or {}), params=params
            )
        except httpx.TimeoutException as e:
            raise TransportError("timeout", str(e) or type(e).__name__) from e
        except httpx.ConnectError as e:
            kind = "tls" if _is_tls_failure(e) else "connect"
            raise TransportError(kind, str(e)) from e
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as e:
            kind = "tls" if _is_tls_failure(e) else "reset"
            raise TransportError(kind, str(e) or type(e).__name__) from e
        except httpx.HTTPError as e:
            raise TransportError("protocol", str(e)) from e
        elapsed = self._clock.monotonic() - t0
        return Response(
            status=r.status_code,
            body=r.content,
            elapsed_s=elapsed,
            bytes_out=len(body or b"") + HEADER_OVERHEAD,
            bytes_in=len(r.content) + HEADER_OVERHEAD,
            headers={k.lower(): v for k, v in r.headers.items()},
        )

    def close(self) -> None:
        self._client.close()
