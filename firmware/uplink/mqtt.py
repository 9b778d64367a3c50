"""MQTT 5 over mutual TLS: :class:`MqttTransport`, the uplink's transport when ``[uplink]
protocol = "mqtt"`` (docs/uplink.md, "MQTT").

It implements the same :class:`~firmware.uplink.transport.Transport` seam as HTTPS, so the
worker (:class:`~firmware.uplink.worker.Uplink`), its two lanes, the token bucket, the byte
budget and the link state machine are shared, not copied. ``POST /v1/reads`` (``/v1/alerts``)
becomes one PUBLISH of the very same gzip JSON body to ``vigil/<agency>/<site>/<device>/reads``
(``.../alerts``; the audit heartbeat to ``.../audit``) at QoS 1, and the broker's PUBACK
becomes the acknowledgement (:func:`puback_ack`): reason 0 accepts every id in the batch, so
the worker marks them sent only then; "no matching subscribers" accepts none (nobody at the
agency would get them, so they stay in the outbox); a refusal is a failed request. Each
message carries its read ids, and the agency de-duplicates by id (QoS 1 is at-least-once),
exactly as the HTTPS ingest does.

The session: client id = ``device_id``, ``clean_start`` false with a session expiry, so the
broker keeps this unit's subscriptions and in-flight messages across outages. On every connect
the unit subscribes to its nudge topics and publishes a retained *birth* message on ``health``;
the broker publishes the retained *last will* (``online: false``) there if the unit vanishes;
a clean shutdown publishes ``online: false, reason: shutdown`` itself.

Threads: :meth:`MqttTransport.run` is the session worker (connect with the shared backoff, then
keep the retained health fresh); paho's own network thread runs while a connection is up (paho
is told not to reconnect by itself, so there is one backoff, with jitter, and a request that
finds no connection wakes the session to try at once). The worker's lanes publish from their
own threads and wait for their PUBACK.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import socket
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from drivers.clock import Clock
from firmware.backoff import Backoff
from firmware.uplink.mqtt_topics import BATCH_TOPICS, Topics, parse_broker
from firmware.uplink.settings import UplinkSettings
from firmware.uplink.status import UplinkStatus
from firmware.uplink.transport import (
    Response,
    TransportError,
    UplinkConfigError,
    build_ssl_context,
)
from firmware.uplink.wire import batch_ids
from firmware.version import VERSION

log = logging.getLogger(__name__)

#: PUBACK reason codes (MQTT 5.0, 3.4.2.1) that the uplink treats specially.
RC_SUCCESS = 0x00
RC_NO_MATCHING_SUBSCRIBERS = 0x10
RC_PACKET_ID_IN_USE = 0x91
RC_QUOTA_EXCEEDED = 0x97
#: Bytes a PUBLISH adds to its body besides the topic (fixed header, packet id, properties), and
#: a PUBACK with its TLS record: for the byte budget.
PUBLISH_OVERHEAD = 100
PUBACK_BYTES = 32
#: Mids whose PUBACK nobody waits for any more are remembered so a late one is dropped; past
#: this many (a broker that never answers) the memory is cleared.
MAX_FORGOTTEN = 4096


def puback_ack(reason: int, ids: Sequence[str], name: str = "") -> bytes:
    """The acknowledgement body (the HTTPS server's format) for a PUBACK reason code. Pure.

    Raises :class:`TransportError` for a refusal (reason >= 0x80): ``throttled`` for quota
    exceeded (backed off like a 429), ``refused`` for the rest (not authorised, topic invalid,
    payload invalid: a device or broker configuration problem, logged at ERROR, every item kept).
    """
    if reason == RC_SUCCESS:
        return json.dumps({"accepted": list(ids)}).encode()
    if reason == RC_NO_MATCHING_SUBSCRIBERS:
        return json.dumps({"accepted": [], "rejected": [
            {"id": i, "reason": "retry"} for i in ids]}).encode()
    label = f"PUBACK 0x{reason:02x} {name}".rstrip()
    if reason == RC_QUOTA_EXCEEDED:
        raise TransportError("throttled", label)
    if reason == RC_PACKET_ID_IN_USE or reason < 0x80:
        raise TransportError("protocol", label)
    raise TransportError("refused", label)


def health_detail(status: UplinkStatus) -> dict[str, Any]:
    """What the retained health message says of the uplink (a dashboard's view of a unit)."""
    return {"link": status.link.state.value, "backlog": dict(status.backlog),
            "last_success": status.last_success.isoformat() if status.last_success else None,
            "reads_sent": status.reads_sent, "alerts_sent": status.alerts_sent}


def health_document(device_id: str, online: bool, reason: str, at: str,
                    detail: Mapping[str, Any] | None = None) -> bytes:
    """The retained ``health`` payload: birth, refresh, shutdown and last will alike."""
    doc: dict[str, Any] = {"device_id": device_id, "online": online, "reason": reason,
                           "at": at, "version": VERSION}
    if detail:
        doc.update(detail)
    return json.dumps(doc, separators=(",", ":"), default=str).encode()


@dataclass(frozen=True)
class MqttStatus:
    broker: str
    connected: bool
    session_present: bool | None
    connects: int
    last_failure: str | None
    nudges: int

    def as_dict(self) -> dict[str, Any]:
        return {"broker": self.broker, "connected": self.connected,
                "session_present": self.session_present, "connects": self.connects,
                "last_failure": self.last_failure, "nudges": self.nudges}


def _no_delay(client: Any, userdata: Any, sock: Any) -> None:
    # paho leaves Nagle on: the tail of a batch would wait for the broker's delayed ACK
    # (~40 ms per batch on loopback, measured), as HttpsTransport's comment explains.
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _failure_kind(e: BaseException) -> str:
    if isinstance(e, ssl.SSLError | ssl.CertificateError):
        return "tls"
    if isinstance(e, TimeoutError):
        return "timeout"
    return "connect"


class MqttTransport:
    """One MQTT 5 session to the broker, shared by both lanes of the uplink worker.

    Wire with ``MqttTransport(settings, clock, on_nudge=...)``; run :meth:`run` on a worker
    thread (or call :meth:`start` for a private one); pass it to ``Uplink`` as ``transport``
    and ``alert_transport``. ``health`` returns extra fields for the retained health message.
    """

    def __init__(
        self, settings: UplinkSettings, clock: Clock, *,
        on_nudge: Callable[[str], None] | None = None,
        health: Callable[[], Mapping[str, Any]] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        try:
            self._addr = parse_broker(settings.mqtt_broker)
        except ValueError as e:
            raise UplinkConfigError(f"uplink.{e}") from e
        self.topics = Topics(settings.mqtt_agency, settings.mqtt_site, settings.device_id)
        problem = self.topics.problem()
        if problem:
            raise UplinkConfigError(f"uplink.{problem}")
        ctx = build_ssl_context(settings)
        # Imported here: paho costs ~1.3 MB of RSS and 15-75 ms over the daemon's own imports
        # (docs/dependencies.md), paid only with protocol = "mqtt".
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self._paho = paho
        self._props: Callable[[], Any] = lambda: Properties(  # type: ignore[no-untyped-call]
            PacketTypes.PUBLISH)
        self.settings = settings
        self._clock = clock
        self._on_nudge = on_nudge
        self.health = health
        self._backoff = Backoff(settings.backoff_initial_s, settings.backoff_max_s,
                                rng or random.Random())
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=settings.device_id,
                             protocol=paho.MQTTv5, reconnect_on_failure=False)
        client.tls_set_context(ctx)
        client.connect_timeout = settings.connect_timeout_s
        # Both lanes and the health message; a bounded queue so a dead link cannot hoard.
        client.max_inflight_messages_set(16)
        client.max_queued_messages_set(64)
        if settings.mqtt_username:
            client.username_pw_set(settings.mqtt_username, settings.mqtt_password or None)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_socket_open = _no_delay
        self._connect_props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        self._connect_props.SessionExpiryInterval = settings.mqtt_session_expiry_s
        self._client = client
        self._cv = threading.Condition()
        self._acks: dict[int, tuple[int, str]] = {}
        self._forgotten: set[int] = set()
        self._connected = threading.Event()
        self._epoch = 0  # bumped on every disconnect: a waiter knows its PUBACK is not coming
        self._kick = threading.Event()
        self._closed = threading.Event()
        self._close_lock = threading.Lock()
        self._said_goodbye = False
        self._thread: threading.Thread | None = None
        self._session_present: bool | None = None
        self._connects = 0
        self._attempts = 0  # failed connection attempts, for requests waiting on one
        self._last_failure: str | None = None
        self._nudges = 0

    # -- the Transport seam ---------------------------------------------------------------------
    def request(
        self, method: str, path: str, body: bytes | None = None,
        headers: Mapping[str, str] | None = None, params: Mapping[str, str] | None = None,
    ) -> Response:
        """Publish one encoded batch and wait for its PUBACK; see :func:`puback_ack`."""
        if method != "POST" or body is None:
            raise TransportError("protocol", f"{method} {path} is not carried over MQTT "
                                 "(hotlists and updates are fetched over HTTPS)")
        try:
            topic = self.topics.upload(path)
        except ValueError as e:
            raise TransportError("protocol", str(e)) from e
        name = topic.rsplit("/", 1)[1]
        ids = batch_ids(body, name) if name in BATCH_TOPICS else None
        epoch = self._ensure_connected()
        props = self._props()
        props.ContentType = "application/json"
        props.UserProperty = [("content-encoding", "gzip")] + [
            ("batch-id", v) for k, v in (headers or {}).items() if k.lower() == "idempotency-key"]
        t0 = self._clock.monotonic()
        info = self._client.publish(topic, body, qos=1, properties=props)
        if info.rc != self._paho.MQTT_ERR_SUCCESS:
            self._forget(info.mid)
            kind = "throttled" if info.rc == self._paho.MQTT_ERR_QUEUE_SIZE else "reset"
            raise TransportError(kind, f"publish: {self._paho.error_string(info.rc)}")
        reason, label = self._await_puback(info.mid, epoch)
        elapsed = self._clock.monotonic() - t0
        if reason == RC_NO_MATCHING_SUBSCRIBERS:
            log.warning("broker has no subscriber for %s: not delivered", topic,
                        extra={"topic": topic, "items": len(ids or ())})
        ack = puback_ack(reason, ids or [], label)
        # A message without items (the audit heartbeat) has only a status: 503 = try later.
        status = 200 if ids is not None or reason == RC_SUCCESS else 503
        return Response(status=status, body=ack, elapsed_s=elapsed,
                        bytes_out=len(body) + len(topic) + PUBLISH_OVERHEAD,
                        bytes_in=PUBACK_BYTES)

    def _ensure_connected(self) -> int:
        """The connection's epoch. Without a connection, wakes the session to try at once and
        waits for that attempt (at most ``connect_timeout_s``): the worker's own backoff paces
        these tries, as it paces HTTPS connects."""
        with self._cv:
            attempts = self._attempts
        if not self._connected.is_set():
            self._kick.set()
            deadline = self._clock.monotonic() + self.settings.connect_timeout_s
            with self._cv:
                while not self._connected.is_set() and self._attempts == attempts:
                    left = deadline - self._clock.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(min(left, 0.1))
            if not self._connected.is_set():
                raise TransportError(self._last_failure or "connect",
                                     f"not connected to {self.settings.mqtt_broker}")
        with self._cv:
            return self._epoch

    def _attempt_failed(self, kind: str) -> None:
        self._last_failure = kind
        with self._cv:
            self._attempts += 1
            self._cv.notify_all()

    def _await_puback(self, mid: int, epoch: int, timeout_s: float | None = None
                      ) -> tuple[int, str]:
        deadline = self._clock.monotonic() + (timeout_s or self.settings.timeout_s)
        with self._cv:
            while mid not in self._acks:
                left = deadline - self._clock.monotonic()
                if self._epoch != epoch or left <= 0:
                    lost = self._epoch != epoch
                    self._forget_locked(mid)
                    raise TransportError("reset" if lost else "timeout",
                                         "connection lost before PUBACK" if lost
                                         else "no PUBACK within timeout_s")
                self._cv.wait(min(left, 0.2))
            return self._acks.pop(mid)

    def _forget(self, mid: int) -> None:
        with self._cv:
            self._forget_locked(mid)

    def _forget_locked(self, mid: int) -> None:
        if self._acks.pop(mid, None) is None:
            if len(self._forgotten) >= MAX_FORGOTTEN:
                self._forgotten.clear()
            self._forgotten.add(mid)

    # -- paho callbacks (paho's network thread) -------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any) -> None:
        if reason_code.is_failure:
            self._attempt_failed("refused")
            log.error("broker refused the connection: %s", reason_code,
                      extra={"broker": self.settings.mqtt_broker, "reason": str(reason_code)})
            return
        from paho.mqtt.subscribeoptions import SubscribeOptions

        self._session_present = bool(flags.session_present)
        self._connects += 1
        self._last_failure = None
        self._backoff.reset()
        client.subscribe([(t, SubscribeOptions(qos=1)) for t in self.topics.subscriptions()])
        birth = client.publish(self.topics.health, self._health_payload(True, "connected"),
                               qos=1, retain=True)
        self._forget(birth.mid)
        self._connected.set()
        with self._cv:
            self._cv.notify_all()
        log.info("mqtt connected", extra={"broker": self.settings.mqtt_broker,
                                          "session_present": self._session_present})

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        with self._cv:
            self._epoch += 1
            self._cv.notify_all()
        if not was:
            self._attempt_failed(self._last_failure or "connect")
        elif not self._closed.is_set():
            log.warning("mqtt connection lost: %s", reason_code,
                        extra={"broker": self.settings.mqtt_broker})

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any,
                    properties: Any) -> None:
        with self._cv:
            if mid in self._forgotten:
                self._forgotten.discard(mid)
                return
            self._acks[mid] = (int(reason_code.value), str(reason_code))
            self._cv.notify_all()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        # Only the topic counts: the payload is never read (whatever a nudge asks for is
        # fetched and verified by the usual signed paths).
        kind = self.topics.nudge_of(message.topic)
        if kind is None:
            return
        self._nudges += 1
        log.info("nudge received: %s", kind, extra={"topic": message.topic})
        if self._on_nudge is not None:
            try:
                self._on_nudge(kind)
            except Exception:
                log.exception("nudge handler failed")

    # -- the session worker ---------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Keep a session up until ``stop``: connect (backing off with jitter between
        failures, woken by a request), refresh the retained health; on the way out, say
        goodbye (retained ``offline``) and disconnect."""
        try:
            while not stop.is_set() and not self._closed.is_set():
                if not self._connected.is_set() and not self._connect_once(stop):
                    self._nap(self._backoff.next_delay(), stop)
                    continue
                self._keep_fresh(stop)
                # Dropped (a broker restart drops a whole fleet at once): a jittered pause
                # before reconnecting, unless a request wakes the session first.
                self._nap(self._backoff.next_delay(), stop)
        finally:
            # Only when stopping: after a crash the supervisor runs this again, and the
            # connection (paho's thread) is still up for it.
            if stop.is_set() or self._closed.is_set():
                self._goodbye()

    def _nap(self, delay: float, stop: threading.Event) -> None:
        deadline = self._clock.monotonic() + delay
        while not stop.is_set() and not self._closed.is_set():
            left = deadline - self._clock.monotonic()
            if left <= 0 or self._kick.wait(min(left, 0.2)):
                self._kick.clear()
                return

    def _connect_once(self, stop: threading.Event) -> bool:
        self._client.loop_stop()  # the previous connection's network thread, if it lingers
        # The last will is fixed at CONNECT: its "at" is when this connection was made.
        self._client.will_set(self.topics.health,
                              self._health_payload(False, "lost", with_detail=False),
                              qos=1, retain=True)
        try:
            self._client.connect(self._addr.host, self._addr.port, self.settings.mqtt_keepalive_s,
                                 clean_start=False, properties=self._connect_props)
        except (OSError, ValueError) as e:
            kind = _failure_kind(e)
            self._attempt_failed(kind)
            level = logging.ERROR if kind == "tls" else logging.WARNING
            log.log(level, "mqtt connect failed (%s): %s", kind, e,
                    extra={"broker": self.settings.mqtt_broker, "failure": kind})
            return False
        with self._cv:
            attempts = self._attempts
        self._client.loop_start()
        deadline = self._clock.monotonic() + self.settings.connect_timeout_s
        while not self._connected.wait(0.1):
            if self._attempts != attempts:  # refused (CONNACK) or dropped before it
                self._client.disconnect()
                return False
            if stop.is_set() or self._closed.is_set() or self._clock.monotonic() > deadline:
                if not stop.is_set() and not self._closed.is_set():
                    self._attempt_failed(self._last_failure or "timeout")
                self._client.disconnect()
                return False
        return True

    def _keep_fresh(self, stop: threading.Event) -> None:
        """While connected: refresh the retained health every ``mqtt_health_interval_s``."""
        next_at = self._clock.monotonic() + self.settings.mqtt_health_interval_s
        while self._connected.is_set() and not stop.is_set() and not self._closed.is_set():
            if self._clock.monotonic() >= next_at:
                self.publish_health("refresh")
                next_at = self._clock.monotonic() + self.settings.mqtt_health_interval_s
            stop.wait(0.2)

    def _health_payload(self, online: bool, reason: str, with_detail: bool = True) -> bytes:
        detail: Mapping[str, Any] | None = None
        if with_detail and self.health is not None:
            try:
                detail = self.health()
            except Exception:  # a sick status must not stop the heartbeat
                log.exception("health detail failed")
        return health_document(self.settings.device_id, online, reason,
                               self._clock.utcnow().isoformat(), detail)

    def publish_health(self, reason: str = "refresh") -> None:
        """Publish the retained health message now (no wait for its PUBACK)."""
        if not self._connected.is_set():
            return
        info = self._client.publish(self.topics.health, self._health_payload(True, reason),
                                    qos=1, retain=True)
        self._forget(info.mid)

    def _goodbye(self) -> None:
        with self._close_lock:
            if self._said_goodbye:
                return
            self._said_goodbye = True
        if self._connected.is_set():
            info = self._client.publish(self.topics.health,
                                        self._health_payload(False, "shutdown"), qos=1,
                                        retain=True)
            # The last will covers a goodbye that did not arrive.
            with contextlib.suppress(TransportError):
                self._await_puback(info.mid, self._epoch, timeout_s=1.0)
            # A normal DISCONNECT (reason 0) discards the will: the unit left on purpose.
            self._client.disconnect()
        # loop_stop joins paho's thread, which ends at once after a disconnect; bounded anyway
        # so a stuck socket cannot hold up the daemon's stop.
        t = threading.Thread(target=self._client.loop_stop, daemon=True)
        t.start()
        t.join(2.0)

    def start(self) -> MqttTransport:
        """Run the session on a private thread (tests, benchmarks, tools); :meth:`close` ends
        it."""
        stop = threading.Event()
        self._thread = threading.Thread(target=self.run, args=(stop,), name="uplink-mqtt",
                                        daemon=True)
        self._thread.start()
        return self

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def status(self) -> MqttStatus:
        return MqttStatus(self.settings.mqtt_broker, self._connected.is_set(),
                          self._session_present, self._connects, self._last_failure,
                          self._nudges)

    def close(self) -> None:
        """Say goodbye and disconnect (idempotent: the worker closes it once per lane)."""
        self._closed.set()
        self._kick.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        self._goodbye()

    def __enter__(self) -> MqttTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
