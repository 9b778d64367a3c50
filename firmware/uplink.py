"""Uplink: the store's outbox to the agency endpoint over HTTPS with mutual TLS.

One worker thread (:meth:`Uplink.run`) loops over :meth:`Uplink.step`. Each step asks the outbox
for a batch (alerts first, then the oldest reads), posts every alert on its own request to
``/v1/alerts``, then the reads as one gzip JSON batch to ``/v1/reads``. The server acknowledges
per id; only acknowledged items are marked sent, so a half-accepted batch is retried for the
rest only, and a retry of an item the server already holds is acknowledged again without being
stored twice (the server deduplicates by id). Wire format: docs/uplink.md.

Pacing:

* failures back off exponentially with jitter (``backoff_initial_s`` .. ``backoff_max_s``);
  an alert wakes the worker (:meth:`Uplink.send_alert_now`) and is tried at once, even during a
  backoff, at most every ``alert_retry_min_s``;
* reads are paced by a token bucket at ``drain_rate_per_s`` so a backlog drains at a steady
  rate that leaves airtime for alerts and live reads, and batches shrink when the link is
  ``degraded`` or ``down`` so an alert never waits behind a long transfer;
* a daily byte budget (``daily_bytes_cap``) stops reads once spent; alerts are exempt (but
  counted); images are only requested while less than ``image_budget_fraction`` is spent.

Stopping: :meth:`run` checks ``stop_event`` between requests. The request in flight finishes or
times out (``timeout_s``); its acknowledged items are marked, the rest stay in the outbox. Nothing
is ever marked sent without an acknowledgement, so a SIGTERM cannot lose a read.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import math
import random
import socket
import ssl
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

from drivers.clock import Clock
from drivers.config_keys import setting
from drivers.resource import Closing
from firmware.backoff import Backoff
from firmware.errors import FirmwareError
from firmware.link.state import LinkState, LinkStateMachine

log = logging.getLogger(__name__)

#: Rejection reasons the server uses for items that will never be accepted as they are.
PERMANENT_REJECTIONS = frozenset({"invalid", "forbidden", "too_large", "unsupported"})


class UplinkError(FirmwareError):
    """Root of the uplink's errors."""


class TransportError(UplinkError, ConnectionError):
    """A request did not produce a usable answer. ``kind`` says why, for the link state and
    the log: ``timeout``, ``connect``, ``tls``, ``reset``, ``http_5xx``, ``http_4xx``,
    ``throttled``, ``protocol``."""

    def __init__(self, kind: str, message: str, retry_after_s: float | None = None) -> None:
        self.kind = kind
        self.retry_after_s = retry_after_s
        super().__init__(f"{kind}: {message}")


class UplinkConfigError(UplinkError, ValueError):
    """Uplink settings that cannot work (missing certificate files, bad URL)."""


# -- contracts ---------------------------------------------------------------------------------


class OutboxItemLike(Protocol):
    """What ``storage.records.OutboxItem`` provides."""

    @property
    def item_id(self) -> str: ...
    @property
    def kind(self) -> str: ...  # "alert" | "read"
    @property
    def read_id(self) -> str: ...
    @property
    def payload(self) -> Mapping[str, Any]: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def attempts(self) -> int: ...


class OutboxSource(Protocol):
    """The part of ``storage.store.Store`` the uplink uses."""

    def next_outbox_batch(
        self, max_items: int, max_bytes: int, include_images: bool = False
    ) -> Sequence[OutboxItemLike]: ...

    def mark_sent(self, item_ids: Sequence[str]) -> int: ...

    def record_attempt(self, item_ids: Sequence[str]) -> Any: ...

    def outbox_depth(self) -> Mapping[str, int]: ...

    def audit(
        self,
        actor: str,
        role: str,
        action: str,
        reason: str,
        result: str,
        detail: Any = None,
    ) -> Any: ...


@dataclass(frozen=True)
class UplinkSettings:
    """Config section ``[uplink]``."""

    endpoint: str = setting("", doc="Agency ingest base URL (https). Empty = no uplink: reads "
                            "queue in the store's outbox.")
    ca_file: str = setting("", doc="The agency CA certificate, pinned: the only trust anchor.")
    cert_file: str = setting("", doc="This device's certificate (from provisioning).")
    key_file: str = setting("", doc="This device's private key (0600).")
    device_id: str = setting("", doc="Must equal the certificate's CN; empty = [unit] "
                             "camera_id.")
    batch_max_reads: int = setting(200, min=1, max=5000)
    batch_max_bytes: int = setting(262144, min=4096, max=16777216,
                                   doc="Uncompressed payload bytes per batch.")
    daily_bytes_cap: int = setting(52428800, min=0, max=10**12,
                                   doc="Bytes per UTC day (0 = no cap); alerts are exempt.")
    send_images: bool = setting(False, doc="Send plate crops and overview images too.")
    image_budget_fraction: float = setting(0.5, min=0.0, max=1.0,
                                           doc="Images only while less of the daily cap is "
                                           "spent.")
    backoff_initial_s: float = setting(2.0, min=0.1, max=600.0)
    backoff_max_s: float = setting(300.0, min=0.1, max=86400.0)
    timeout_s: float = setting(20.0, min=1.0, max=300.0)
    connect_timeout_s: float = setting(10.0, min=1.0, max=120.0)
    drain_rate_per_s: float = setting(25.0, min=0.1, max=1e6,
                                      doc="Steady backlog drain rate (reads/s); live reads and "
                                      "alerts keep their room.")
    alert_retry_min_s: float = setting(2.0, min=0.0, max=60.0)
    alert_lane: bool = setting(True, doc="A second connection so alerts never wait for a "
                               "batch.")
    idle_poll_s: float = setting(5.0, min=0.1, max=300.0)
    gzip_level: int = setting(6, min=1, max=9)


# -- transport -----------------------------------------------------------------------------------


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


_HEADER_OVERHEAD = 250  # request line + headers, both ways, roughly; for the byte budget


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
            bytes_out=len(body or b"") + _HEADER_OVERHEAD,
            bytes_in=len(r.content) + _HEADER_OVERHEAD,
            headers={k.lower(): v for k, v in r.headers.items()},
        )

    def close(self) -> None:
        self._client.close()


# -- pure helpers ----------------------------------------------------------------------------


class TokenBucket:
    """Reads per second for the drain, with a burst of one batch."""

    def __init__(self, rate_per_s: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate_per_s, burst
        self._tokens, self._t = burst, now

    def available(self, now: float) -> int:
        self._tokens = min(self.burst, self._tokens + (now - self._t) * self.rate)
        self._t = now
        return int(self._tokens)

    def take(self, n: int, now: float) -> None:
        self.available(now)
        self._tokens -= n

    def seconds_until(self, n: int, now: float) -> float:
        have = self.available(now)
        return 0.0 if have >= n else (n - self._tokens) / self.rate


class ByteBudget:
    """Daily byte cap. The window follows the UTC date, but a new window opens at most once per
    20 h of monotonic time, so a wall clock stepped forward (bad RTC, NTP step) cannot grant a
    second day's budget; and after 24 h of monotonic time it opens regardless, so a clock
    stuck in the past cannot starve the uplink."""

    MIN_WINDOW_S = 20 * 3600
    MAX_WINDOW_S = 24 * 3600

    def __init__(self, cap: int, clock: Clock) -> None:
        self.cap = cap
        self._clock = clock
        self._lock = threading.Lock()  # both uplink lanes spend
        self.used = 0
        self._day: date = clock.utcnow().date()
        self._opened = clock.monotonic()

    def _roll(self) -> None:
        mono = self._clock.monotonic()
        day = self._clock.utcnow().date()
        age = mono - self._opened
        if (day != self._day and age >= self.MIN_WINDOW_S) or age >= self.MAX_WINDOW_S:
            self.used, self._day, self._opened = 0, day, mono

    def spend(self, n: int) -> None:
        with self._lock:
            self._roll()
            self.used += n

    def fraction_used(self) -> float:
        with self._lock:
            self._roll()
            return 0.0 if self.cap <= 0 else self.used / self.cap

    def exhausted(self) -> bool:
        return self.cap > 0 and self.fraction_used() >= 1.0


def _json_default(o: Any) -> Any:
    if isinstance(o, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(o)).decode()
    if isinstance(o, datetime):
        return o.isoformat()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def wire_id(item: OutboxItemLike) -> str:
    """The id the server deduplicates on: the read id, or the alert id for alerts."""
    if item.kind == "alert":
        aid = item.payload.get("alert_id")
        return str(aid) if aid else item.item_id
    return item.read_id


def encode_batch(
    device_id: str, kind: str, items: Sequence[OutboxItemLike], level: int,
    extra: Mapping[str, Any] | None = None,
) -> tuple[str, bytes]:
    """Gzip JSON body for ``/v1/reads`` (kind ``reads``) or ``/v1/alerts`` (``alerts``)."""
    batch_id = uuid.uuid4().hex
    doc: dict[str, Any] = {
        "device_id": device_id,
        "batch_id": batch_id,
        kind: [
            {
                "id": wire_id(it),
                "read_id": it.read_id,
                "created_at": it.created_at.isoformat(),
                "attempt": it.attempts + 1,
                "data": dict(it.payload),
            }
            for it in items
        ],
    }
    if extra:
        doc.update(extra)
    raw = json.dumps(doc, default=_json_default, separators=(",", ":")).encode()
    return batch_id, gzip.compress(raw, compresslevel=level, mtime=0)


@dataclass(frozen=True)
class Ack:
    accepted: frozenset[str]
    rejected: Mapping[str, str]


def parse_ack(body: bytes) -> Ack:
    try:
        doc = json.loads(body)
        accepted = frozenset(str(x) for x in doc["accepted"])
        rejected = {str(r["id"]): str(r.get("reason", "")) for r in doc.get("rejected", [])}
    except (ValueError, KeyError, TypeError) as e:
        raise TransportError("protocol", f"unreadable acknowledgement: {e}") from e
    return Ack(accepted, rejected)


# -- the worker --------------------------------------------------------------------------------


@dataclass
class UplinkCounters:
    reads_sent: int = 0
    alerts_sent: int = 0
    batches_ok: int = 0
    requests_failed: int = 0
    partial_batches: int = 0
    rejected_permanent: int = 0
    bytes_total: int = 0


class Uplink(Closing):
    """The uplink worker. Wire with ``Uplink(settings, store, link, clock)``; run
    :meth:`run` on a thread; call :meth:`send_alert_now` after storing an alert."""

    def __init__(
        self,
        settings: UplinkSettings,
        outbox: OutboxSource,
        link: LinkStateMachine,
        clock: Clock,
        transport: Transport | None = None,
        rng: random.Random | None = None,
        clock_synced: Any = None,
        alert_transport: Transport | None = None,
    ) -> None:
        self.settings = settings
        self._outbox = outbox
        self._link = link
        self._clock = clock
        self._transport = transport or HttpsTransport(settings, clock)
        # The alert lane (used by run()) needs its own connection: one httpx connection
        # carries one request at a time, and the point is not to wait for the batch on it.
        if alert_transport is None and transport is None and settings.alert_lane:
            alert_transport = HttpsTransport(settings, clock)
        self._alert_transport = alert_transport
        self._alert_backoff = Backoff(
            max(0.1, settings.alert_retry_min_s), max(settings.alert_retry_min_s, 60.0),
            random.Random((rng or random.Random()).random()),
        )
        self._alert_next = clock.monotonic()
        self._claimed: set[str] = set()
        self._backoff = Backoff(
            settings.backoff_initial_s, settings.backoff_max_s, rng or random.Random()
        )
        self._bucket = TokenBucket(
            settings.drain_rate_per_s, max(1, settings.batch_max_reads), clock.monotonic()
        )
        self._budget = ByteBudget(settings.daily_bytes_cap, clock)
        # A callable answering "is the wall clock synchronised?" (firmware.link.timesync), sent with
        # each batch so the server can weigh device timestamps.
        self._clock_synced = clock_synced
        self._wake = threading.Event()
        self._alert_kick = threading.Event()
        self._alert_wake = threading.Event()
        self._lock = threading.Lock()
        self._next_attempt = clock.monotonic()
        self._last_attempt = -math.inf
        self._last_success: datetime | None = None
        self._last_error: str | None = None
        self._permanent_seen: set[str] = set()
        self._backlogged = False  # the last batch came back full: more is waiting
        self.counters = UplinkCounters()

    # -- API for the pipeline and the CLI --------------------------------------------------
    def send_alert_now(self, item_id: str | None = None) -> None:
        """An alert was stored: wake the worker and try it at once, backoff or not."""
        self._alert_kick.set()
        self._alert_wake.set()
        self._wake.set()

    def notify(self) -> None:
        """New reads are in the outbox (optional: the worker also polls)."""
        self._wake.set()

    @property
    def link_state(self) -> LinkState:
        """The link as this worker last saw it (typed; ``status()`` is the JSON view)."""
        return self._link.state

    def status(self) -> dict[str, Any]:
        try:
            depth: dict[str, Any] = dict(self._outbox.outbox_depth())
        except Exception as e:  # noqa: BLE001 - status must answer when the store is unwell
            depth = {"error": str(e)}
        with self._lock:
            c = self.counters
            return {
                "link": self._link.status(),
                "last_success": self._last_success.isoformat() if self._last_success else None,
                "last_error": self._last_error,
                "backlog": depth,
                "bytes_today": self._budget.used,
                "daily_bytes_cap": self._budget.cap,
                "next_attempt_in_s": round(
                    max(0.0, self._next_attempt - self._clock.monotonic()), 1
                ),
                "reads_sent": c.reads_sent,
                "alerts_sent": c.alerts_sent,
                "requests_failed": c.requests_failed,
                "partial_batches": c.partial_batches,
                "rejected_permanent": c.rejected_permanent,
            }

    def close(self) -> None:
        self._transport.close()
        if self._alert_transport is not None:
            self._alert_transport.close()

    # -- the loop ------------------------------------------------------------------------------
    def run(self, stop_event: threading.Event) -> None:
        """Blocking worker loop; returns after the request in flight when ``stop_event`` is set."""
        log.info("uplink started", extra={"endpoint": self.settings.endpoint})
        lane: threading.Thread | None = None
        if self._alert_transport is not None:
            lane = threading.Thread(
                target=self._alert_loop, args=(stop_event,), name="uplink-alerts", daemon=True
            )
            lane.start()
        while not stop_event.is_set():
            try:
                delay = self.step()
            except Exception:
                # A store error must not kill the worker; the supervisor sees it in the log.
                log.exception("uplink step failed")
                delay = self.settings.idle_poll_s
            if delay > 0:
                self._wait(delay, stop_event)
        self._alert_wake.set()
        if lane is not None:
            lane.join(timeout=self.settings.timeout_s + self.settings.connect_timeout_s + 1)
        log.info("uplink stopped", extra={"counters": vars(self.counters).copy()})

    def _alert_loop(self, stop_event: threading.Event) -> None:
        while not stop_event.is_set():
            try:
                delay = self.step_alerts()
            except Exception:
                log.exception("uplink alert step failed")
                delay = self.settings.idle_poll_s
            if self._alert_wake.wait(delay):
                self._alert_wake.clear()

    def step_alerts(self) -> float:
        """The alert lane: send pending alerts over the alert connection, now. Returns the wait
        before the next try (woken early by :meth:`send_alert_now`)."""
        assert self._alert_transport is not None
        now = self._clock.monotonic()
        if now < self._alert_next and now - self._last_attempt < self.settings.alert_retry_min_s:
            return self._alert_next - now
        batch = self._outbox.next_outbox_batch(32, self.settings.batch_max_bytes, False)
        claimed = self._claim([it for it in batch if it.kind == "alert"])
        try:
            for alert in claimed:
                if not self._send("alerts", [alert], self._alert_transport):
                    delay = self._alert_backoff.next_delay()
                    self._alert_next = self._clock.monotonic() + delay
                    return delay
        finally:
            self._release(claimed)
        self._alert_backoff.reset()
        self._alert_next = self._clock.monotonic()
        return self.settings.idle_poll_s

    def _claim(self, items: list[OutboxItemLike]) -> list[OutboxItemLike]:
        """Items not being sent by the other lane, now claimed by the caller."""
        with self._lock:
            free = [it for it in items if it.item_id not in self._claimed]
            self._claimed.update(it.item_id for it in free)
        return free

    def _release(self, items: Sequence[OutboxItemLike]) -> None:
        with self._lock:
            self._claimed.difference_update(it.item_id for it in items)

    def _wait(self, delay: float, stop_event: threading.Event) -> None:
        deadline = self._clock.monotonic() + delay
        while not stop_event.is_set():
            left = deadline - self._clock.monotonic()
            if left <= 0:
                return
            if self._wake.wait(min(left, 0.2)):
                self._wake.clear()
                return

    def _batch_limit(self) -> int:
        state = self._link.state
        n = self.settings.batch_max_reads
        if state is LinkState.DEGRADED:
            return max(1, n // 4)
        if state is LinkState.DOWN:
            return max(1, min(n, 10))  # a probe: do not spend airtime on a link that fails
        return n

    def step(self) -> float:
        """One unit of work. Returns how long to wait before the next (0: go on at once)."""
        now = self._clock.monotonic()
        kicked = self._alert_kick.is_set()
        self._alert_kick.clear()
        if now < self._next_attempt and not (
            kicked and now - self._last_attempt >= self.settings.alert_retry_min_s
        ):
            return self._next_attempt - now
        only_alerts = now < self._next_attempt  # an alert kick during a backoff
        reads_ok = not only_alerts and not self._budget.exhausted()
        allowed = self._bucket.available(now) if reads_ok else 0
        batch_limit = self._batch_limit()
        if reads_ok and self._backlogged and not kicked and allowed < batch_limit:
            # Draining a backlog: wait for a whole batch of tokens rather than trickling one
            # read per request (per-request overhead would dominate on a slow link).
            return max(0.05, self._bucket.seconds_until(batch_limit, now))
        limit = min(batch_limit, allowed)
        include_images = (
            self.settings.send_images
            and self._budget.fraction_used() < self.settings.image_budget_fraction
        )
        batch = self._outbox.next_outbox_batch(
            max(1, limit), self.settings.batch_max_bytes, include_images
        )
        if not batch:
            self._backlogged = False
            return self.settings.idle_poll_s
        self._backlogged = len(batch) >= max(1, limit)
        alerts = [it for it in batch if it.kind == "alert"]
        reads = [it for it in batch if it.kind != "alert"][: max(0, limit)]
        claimed = self._claim(alerts)
        try:
            for alert in claimed:
                if not self._send("alerts", [alert]):
                    return self._after_failure()
        finally:
            self._release(claimed)
        if reads:
            if not self._send("reads", reads):
                return self._after_failure()
            self._bucket.take(len(reads), self._clock.monotonic())
        if alerts or reads:
            return 0.0
        if not reads_ok:
            return self.settings.idle_poll_s if not only_alerts else self._next_attempt - now
        return max(0.05, self._bucket.seconds_until(1, now))

    def _after_failure(self) -> float:
        delay = self._backoff.next_delay()
        self._next_attempt = self._clock.monotonic() + delay
        return delay

    def _envelope_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"sent_at": self._clock.utcnow().isoformat()}
        if self._clock_synced is not None:
            extra["clock_synced"] = bool(self._clock_synced())
        return extra

    def _send(
        self, kind: str, items: Sequence[OutboxItemLike], transport: Transport | None = None
    ) -> bool:
        """Post one batch; mark what was acknowledged. True when the request itself worked."""
        batch_id, body = encode_batch(
            self.settings.device_id, kind, items, self.settings.gzip_level,
            self._envelope_extra(),
        )
        path = "/v1/alerts" if kind == "alerts" else "/v1/reads"
        self._last_attempt = self._clock.monotonic()
        ids = [it.item_id for it in items]
        try:
            resp = (transport or self._transport).request(
                "POST", path, body,
                headers={
                    "Content-Type": "application/json",
                    "Content-Encoding": "gzip",
                    "Idempotency-Key": batch_id,
                },
            )
            self._budget.spend(resp.bytes_out + resp.bytes_in)
            with self._lock:
                self.counters.bytes_total += resp.bytes_out + resp.bytes_in
            if resp.status == 429 or resp.status >= 500:
                retry_after = None
                if resp.status == 429:
                    try:
                        retry_after = float(resp.headers.get("retry-after", ""))
                    except ValueError:
                        retry_after = None
                kind_ = "throttled" if resp.status == 429 else "http_5xx"
                raise TransportError(kind_, f"HTTP {resp.status}", retry_after)
            if resp.status != 200:
                raise TransportError("http_4xx", f"HTTP {resp.status}: {resp.body[:200]!r}")
            ack = parse_ack(resp.body)
        except TransportError as e:
            self._budget.spend(len(body) + _HEADER_OVERHEAD)
            self._outbox.record_attempt(ids)
            self._link.on_failure(e.kind)
            with self._lock:
                self.counters.requests_failed += 1
                self._last_error = str(e)
            level = logging.ERROR if e.kind in ("tls", "http_4xx") else logging.WARNING
            log.log(level, "uplink %s request failed: %s", kind, e,
                    extra={"kind": kind, "failure": e.kind, "items": len(items)})
            if e.retry_after_s is not None:
                self._backoff.failures = max(self._backoff.failures - 1, 0)
                self._next_attempt = self._clock.monotonic() + e.retry_after_s
            return False
        self._link.on_success(resp.elapsed_s)
        self._backoff.reset()
        self._next_attempt = self._clock.monotonic()
        self._apply_ack(kind, items, ack, batch_id)
        return True

    def _apply_ack(
        self, kind: str, items: Sequence[OutboxItemLike], ack: Ack, batch_id: str
    ) -> None:
        done = [it.item_id for it in items if wire_id(it) in ack.accepted]
        left = [it for it in items if wire_id(it) not in ack.accepted]
        if done:
            self._outbox.mark_sent(done)
        if left:
            self._outbox.record_attempt([it.item_id for it in left])
        permanent = [
            it for it in left if ack.rejected.get(wire_id(it), "retry") in PERMANENT_REJECTIONS
        ]
        with self._lock:
            fresh = [it for it in permanent if it.item_id not in self._permanent_seen]
            self._permanent_seen.update(it.item_id for it in fresh)
        for it in fresh:
            # Kept in the outbox (never dropped silently) and audited once per process.
            self._outbox.audit(
                "uplink", "system", "uplink.rejected", ack.rejected[wire_id(it)], "kept",
                {"item_id": it.item_id, "kind": it.kind, "batch_id": batch_id},
            )
        if not done:
            # Nothing accepted (every id rejected): the request worked but made no progress,
            # so pace the retry like a failure instead of spinning.
            self._next_attempt = self._clock.monotonic() + self._backoff.next_delay()
        with self._lock:
            c = self.counters
            if kind == "alerts":
                c.alerts_sent += len(done)
            else:
                c.reads_sent += len(done)
            c.batches_ok += 1
            c.partial_batches += 1 if left else 0
            c.rejected_permanent += len(fresh)
            self._last_success = self._clock.utcnow()
            self._last_error = None if not left else f"{len(left)} not acknowledged"
        log.debug(
            "uplink %s batch acknowledged", kind,
            extra={"batch_id": batch_id, "accepted": len(done), "pending": len(left)},
        )


# -- an outbox that lives in memory ------------------------------------------------------------


@dataclass(frozen=True)
class MemoryOutboxItem:
    item_id: str
    kind: str
    read_id: str
    payload: Mapping[str, Any]
    created_at: datetime
    attempts: int


class MemoryOutbox:
    """An :class:`OutboxSource` held in memory, for tests, benchmarks and the simulation rig.

    It behaves like the store's outbox: alerts before reads, each kind in insertion order (never
    by wall-clock time, which may jump), ``max_items``/``max_bytes`` respected (one item always
    fits), image fields (keys starting ``image``) left out unless asked for, ``mark_sent``
    idempotent, attempts counted. ``sent_order`` records what was marked sent, in order.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, dict[str, Any]]] = {"alert": {}, "read": {}}
        self._sent: set[str] = set()
        self.sent_order: list[str] = []
        self.audit_log: list[tuple[Any, ...]] = []
        self._n = 0

    def add(
        self, kind: str, read_id: str, payload: Mapping[str, Any], created_at: datetime,
        item_id: str | None = None,
    ) -> str:
        if kind not in self._pending:
            raise ValueError(f"unknown outbox kind {kind!r}")
        with self._lock:
            self._n += 1
            iid = item_id or f"{kind[0]}{self._n:09d}"
            if iid in self._sent or iid in self._pending[kind]:
                return iid
            size = len(json.dumps(payload, default=_json_default))
            self._pending[kind][iid] = {
                "read_id": read_id, "payload": dict(payload), "created_at": created_at,
                "attempts": 0, "size": size,
            }
            return iid

    def next_outbox_batch(
        self, max_items: int, max_bytes: int, include_images: bool = False
    ) -> list[MemoryOutboxItem]:
        out: list[MemoryOutboxItem] = []
        total = 0
        with self._lock:
            for kind in ("alert", "read"):
                for iid, rec in self._pending[kind].items():
                    if len(out) >= max_items or (out and total + rec["size"] > max_bytes):
                        return out
                    payload = rec["payload"]
                    if not include_images:
                        payload = {k: v for k, v in payload.items() if not k.startswith("image")}
                    total += rec["size"]
                    out.append(
                        MemoryOutboxItem(iid, kind, rec["read_id"], payload, rec["created_at"],
                                         rec["attempts"])
                    )
        return out

    def mark_sent(self, item_ids: Sequence[str]) -> int:
        n = 0
        with self._lock:
            for iid in item_ids:
                for pend in self._pending.values():
                    if pend.pop(iid, None) is not None:
                        self._sent.add(iid)
                        self.sent_order.append(iid)
                        n += 1
        return n

    def record_attempt(self, item_ids: Sequence[str]) -> None:
        with self._lock:
            for iid in item_ids:
                for pend in self._pending.values():
                    if iid in pend:
                        pend[iid]["attempts"] += 1

    def outbox_depth(self) -> dict[str, int]:
        with self._lock:
            return {"alerts": len(self._pending["alert"]), "reads": len(self._pending["read"])}

    def audit(
        self, actor: str, role: str, action: str, reason: str, result: str, detail: Any = None
    ) -> None:
        with self._lock:
            self.audit_log.append((actor, role, action, reason, result, detail))
