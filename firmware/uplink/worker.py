"""The uplink worker: :class:`Uplink` drains the store's outbox to the agency (see the package
docstring for the rules); a second thread, the alert lane, sends alerts on their own connection.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import random
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from drivers.clock import Clock
from drivers.resource import Closing
from firmware.backoff import Backoff
from firmware.link.state import LinkState, LinkStateMachine
from firmware.uplink.pacing import (
    BudgetLedger,
    ByteBudget,
    PaceInput,
    TokenBucket,
    batch_limit,
    plan,
)
from firmware.uplink.settings import UplinkSettings
from firmware.uplink.status import UplinkStatus
from firmware.uplink.transport import (
    HEADER_OVERHEAD,
    HttpsTransport,
    Response,
    Transport,
    TransportError,
)
from firmware.uplink.wire import (
    PERMANENT_REJECTIONS,
    Ack,
    OutboxItemLike,
    encode_batch,
    parse_ack,
    wire_id,
)

log = logging.getLogger(__name__)

#: How often a worker waiting on its request checks for a stop.
STOP_POLL_S = 0.05
#: With nothing to send for this long, a heartbeat carries the audit head off the unit alone
#: (every batch carries one too), so the agency's copy is never more than this stale while
#: the link is up. A few hundred bytes per heartbeat: about 90 kB a day.
AUDIT_HEARTBEAT_S = 300.0
#: Status reports (``POST /v1/status``: OTA steps) leave at most this often; each carries the
#: latest state and every step not yet acknowledged, so a step between two reports is not lost.
STATUS_MIN_INTERVAL_S = 5.0


class _Abandoned(Exception):
    """The worker was told to stop while its request was in flight: the batch is left unmarked
    (it is resent after the restart, under the same ids, and the server deduplicates)."""


class OutboxSource(Protocol):
    """The part of ``storage.store.Store`` the uplink uses."""

    def next_outbox_batch(
        self, max_items: int, max_bytes: int, include_images: bool = False
    ) -> Sequence[OutboxItemLike]: ...

    def mark_sent(self, item_ids: Sequence[str]) -> int: ...

    def record_attempt(self, item_ids: Sequence[str]) -> Any: ...

    def dead_letter(self, reasons: Mapping[str, str]) -> int: ...

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


@runtime_checkable
class AuditPublisher(Protocol):
    """Signs the audit chain's head for publication (``storage.store.Store``)."""

    def published_checkpoint(self, device_id: str = "") -> Mapping[str, Any] | None: ...

    def checkpoint_published(self, number: int) -> None: ...


class StatusSource(Protocol):
    """A part of the unit that reports its state upstream (``ota.worker.OtaWorker``)."""

    def upstream(self) -> dict[str, Any] | None: ...  # None: nothing new since delivered

    def delivered(self, report: dict[str, Any]) -> None: ...


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
        # The alert lane (used by run()) needs its own connection: one HTTP connection
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
        self._budget = ByteBudget(settings.daily_bytes_cap, clock,
                                  outbox if isinstance(outbox, BudgetLedger) else None)
        # A callable answering "is the wall clock synchronised?" (firmware.link.timesync), sent with
        # each batch so the server can weigh device timestamps.
        self._clock_synced = clock_synced
        # Signed audit heads leave with every batch and heartbeat (docs/threat-model.md).
        self._audit_head = outbox if isinstance(outbox, AuditPublisher) else None
        self._last_published = -math.inf
        self._status_sources: dict[str, StatusSource] = {}
        self._status_last = -math.inf
        self._wake = threading.Event()
        self._stop_event: threading.Event | None = None  # set by run(): abandons requests
        self._alert_kick = threading.Event()
        self._alert_wake = threading.Event()
        self._lock = threading.Lock()
        self._next_attempt = clock.monotonic()
        self._last_attempt = -math.inf
        self._last_success: datetime | None = None
        self._last_error: str | None = None
        self._backlogged = False  # the last batch came back full: more is waiting
        self.counters = UplinkCounters()

    # -- API for the pipeline and the CLI --------------------------------------------------
    def send_alert_now(self, item_id: str | None = None) -> None:
        """An alert was stored: wake the worker and try it at once, backoff or not."""
        self._alert_kick.set()
        self._alert_wake.set()
        self._wake.set()

    def notify(self) -> None:
        """New reads are in the outbox, or a status source has news (optional: the worker
        also polls)."""
        self._wake.set()

    def add_status(self, name: str, source: StatusSource) -> None:
        """Report ``source`` upstream under ``name`` (one key of the ``/v1/status`` body)."""
        self._status_sources[name] = source

    @property
    def link_state(self) -> LinkState:
        """The link as this worker last saw it (typed; ``status()`` is the JSON view)."""
        return self._link.state

    def status(self) -> UplinkStatus:
        try:
            depth: dict[str, Any] = dict(self._outbox.outbox_depth())
        except Exception as e:  # noqa: BLE001 - status must answer when the store is unwell
            depth = {"error": str(e)}
        with self._lock:
            c = self.counters
            return UplinkStatus(
                self._link.status(), self._last_success, self._last_error, depth,
                self._budget.used, self._budget.cap,
                round(max(0.0, self._next_attempt - self._clock.monotonic()), 1),
                c.reads_sent, c.alerts_sent, c.requests_failed, c.partial_batches,
                c.rejected_permanent)

    def close(self) -> None:
        self._transport.close()
        if self._alert_transport is not None:
            self._alert_transport.close()

    # -- the loop ------------------------------------------------------------------------------
    def run(self, stop_event: threading.Event) -> None:
        """Blocking worker loop; returns after the request in flight when ``stop_event`` is set."""
        log.info("uplink started", extra={"endpoint": self.settings.endpoint})
        self._stop_event = stop_event
        lane: threading.Thread | None = None
        if self._alert_transport is not None:
            lane = threading.Thread(
                target=self._alert_loop, args=(stop_event,), name="uplink-alerts", daemon=True
            )
            lane.start()
        while not stop_event.is_set():
            try:
                delay = self.step()
            except _Abandoned:
                break
            except Exception:
                # A store error must not kill the worker; the supervisor sees it in the log.
                log.exception("uplink step failed")
                delay = self.settings.idle_poll_s
            if delay > 0:
                self._wait(delay, stop_event)
        self._alert_wake.set()
        if lane is not None:
            lane.join(timeout=1.0)  # it abandons its request too (a daemon thread)
        log.info("uplink stopped", extra={"counters": vars(self.counters).copy()})

    def _alert_loop(self, stop_event: threading.Event) -> None:
        while not stop_event.is_set():
            try:
                delay = self.step_alerts()
            except _Abandoned:
                return
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

    def step(self) -> float:
        """One unit of work. Returns how long to wait before the next (0: go on at once)."""
        now = self._clock.monotonic()
        kicked = self._alert_kick.is_set()
        self._alert_kick.clear()
        pace = plan(PaceInput(now, self._next_attempt, self._last_attempt, kicked,
                              self.settings.alert_retry_min_s))
        if pace.wait_s > 0:
            return pace.wait_s
        only_alerts = pace.only_alerts
        if not only_alerts:
            self._report_status()
        reads_ok = not only_alerts and not self._budget.exhausted()
        allowed = self._bucket.available(now) if reads_ok else 0
        batch_limit_ = batch_limit(self._link.state, self.settings.batch_max_reads)
        if reads_ok and self._backlogged and not kicked and allowed < batch_limit_:
            # Draining a backlog: wait for a whole batch of tokens rather than trickling one
            # read per request (per-request overhead would dominate on a slow link).
            return max(0.05, self._bucket.seconds_until(batch_limit_, now))
        limit = min(batch_limit_, allowed)
        include_images = (
            self.settings.send_images
            and self._budget.fraction_used() < self.settings.image_budget_fraction
        )
        batch = self._outbox.next_outbox_batch(
            max(1, limit), self.settings.batch_max_bytes, include_images
        )
        if not batch:
            self._backlogged = False
            self._heartbeat()
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

    def _envelope_extra(self, checkpoint: bool = True) -> dict[str, Any]:
        extra: dict[str, Any] = {"sent_at": self._clock.utcnow().isoformat()}
        if self._clock_synced is not None:
            extra["clock_synced"] = bool(self._clock_synced())
        if self._audit_head is not None and checkpoint:
            head = self._audit_head.published_checkpoint(self.settings.device_id)
            if head is not None:
                extra["audit_checkpoint"] = dict(head)
        return extra

    def _heartbeat(self) -> None:
        """Idle for :data:`AUDIT_HEARTBEAT_S`: publish the signed audit head on its own
        (``POST /v1/audit-checkpoints``). A failure waits for the next period; reads and
        alerts are not held back by it."""
        now = self._clock.monotonic()
        if self._audit_head is None or now - self._last_published < AUDIT_HEARTBEAT_S:
            return
        self._last_published = now
        doc = {"device_id": self.settings.device_id, **self._envelope_extra()}
        if self._post_side_doc("/v1/audit-checkpoints", doc, "audit heartbeat"):
            self._checkpoint_delivered(doc)

    def _post_side_doc(self, path: str, doc: Mapping[str, Any], what: str) -> bool:
        """POST one gzip JSON document beside the read batches, its bytes spent from the budget;
        True when the agency answered 200. A failure is logged as ``what`` and left to the
        caller's next period."""
        body = gzip.compress(json.dumps(doc, separators=(",", ":")).encode(),
                             compresslevel=self.settings.gzip_level, mtime=0)
        try:
            resp = self._request(self._transport, "POST", path, body,
                                 headers={"Content-Type": "application/json",
                                          "Content-Encoding": "gzip"})
        except TransportError as e:
            log.warning("%s failed: %s", what, e, extra={"failure": e.kind})
            return False
        self._budget.spend(resp.bytes_out + resp.bytes_in)
        if resp.status != 200:
            log.warning("%s refused", what, extra={"status": resp.status})
            return False
        return True

    def _report_status(self) -> None:
        """Send what the status sources have that the agency has not acknowledged (``POST
        /v1/status``, gzip JSON ``{"device_id", "sent_at", <name>: report}``), at most every
        :data:`STATUS_MIN_INTERVAL_S`. A failure is retried then; reads are not held back."""
        now = self._clock.monotonic()
        if not self._status_sources or now - self._status_last < STATUS_MIN_INTERVAL_S:
            return
        reports = {name: r for name, src in self._status_sources.items()
                   if (r := src.upstream()) is not None}
        if not reports:
            return
        self._status_last = now
        doc = {"device_id": self.settings.device_id,
               "sent_at": self._clock.utcnow().isoformat(), **reports}
        if not self._post_side_doc("/v1/status", doc, "status report"):
            return
        for name, report in reports.items():
            self._status_sources[name].delivered(report)

    def _checkpoint_delivered(self, envelope: Mapping[str, Any]) -> None:
        """A request carrying a checkpoint was answered 200: number the next one after it."""
        cp = envelope.get("audit_checkpoint")
        if self._audit_head is not None and isinstance(cp, Mapping):
            self._audit_head.checkpoint_published(int(cp.get("number", 0)))

    def _send(
        self, kind: str, items: Sequence[OutboxItemLike], transport: Transport | None = None
    ) -> bool:
        """Post one batch; mark what was acknowledged. True when the request itself worked."""
        # Only the read lane's connection carries audit heads: requests on one connection
        # arrive in the order they were signed; two lanes could deliver them crossed.
        extra = self._envelope_extra(checkpoint=transport is None)
        batch_id, body = encode_batch(
            self.settings.device_id, kind, items, self.settings.gzip_level, extra,
        )
        path = "/v1/alerts" if kind == "alerts" else "/v1/reads"
        self._last_attempt = self._clock.monotonic()
        ids = [it.item_id for it in items]
        try:
            resp = self._request(
                transport or self._transport, "POST", path, body,
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
            self._budget.spend(len(body) + HEADER_OVERHEAD)
            self._outbox.record_attempt(ids)
            self._link.on_failure(e.kind)
            with self._lock:
                self.counters.requests_failed += 1
                self._last_error = str(e)
            level = logging.ERROR if e.kind in ("tls", "http_4xx", "refused") else logging.WARNING
            log.log(level, "uplink %s request failed: %s", kind, e,
                    extra={"kind": kind, "failure": e.kind, "items": len(items)})
            if e.retry_after_s is not None:
                self._backoff.failures = max(self._backoff.failures - 1, 0)
                self._next_attempt = self._clock.monotonic() + e.retry_after_s
            return False
        self._link.on_success(resp.elapsed_s)
        self._last_published = self._clock.monotonic()  # the batch carried the audit head
        self._checkpoint_delivered(extra)
        self._backoff.reset()
        self._next_attempt = self._clock.monotonic()
        self._apply_ack(kind, items, ack, batch_id)
        return True

    def _request(self, transport: Transport, method: str, path: str, body: bytes,
                 headers: Mapping[str, str]) -> Response:
        """``transport.request``, abandoned when the worker is told to stop.

        Under :meth:`run` the request runs on a helper (daemon) thread and this thread waits
        for it or for the stop, so SIGTERM never waits out ``timeout_s`` (20 s) against
        systemd's 5 s ``TimeoutStopSec``: the helper is left to time out on its own.
        """
        stop = self._stop_event
        if stop is None:  # stepped directly (tests, benchmarks): nothing to abandon for
            return transport.request(method, path, body, headers=headers)
        if stop.is_set():
            raise _Abandoned
        result: list[Response] = []
        error: list[BaseException] = []
        done = threading.Event()

        def call() -> None:
            try:
                result.append(transport.request(method, path, body, headers=headers))
            except BaseException as e:  # noqa: BLE001 - handed to the waiting worker
                error.append(e)
            finally:
                done.set()

        threading.Thread(target=call, name="uplink-request", daemon=True).start()
        while not done.wait(STOP_POLL_S):
            if stop.is_set():
                log.info("uplink request abandoned for stop", extra={"path": path})
                raise _Abandoned
        if error:
            raise error[0]
        return result[0]

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
        # Dead letters: out of the queue, kept until retention, audited by the store.
        fresh = self._outbox.dead_letter(
            {it.item_id: ack.rejected[wire_id(it)] for it in permanent}) if permanent else 0
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
            c.rejected_permanent += fresh
            self._last_success = self._clock.utcnow()
            self._last_error = None if not left else f"{len(left)} not acknowledged"
        log.debug(
            "uplink %s batch acknowledged", kind,
            extra={"batch_id": batch_id, "accepted": len(done), "pending": len(left)},
        )
