"""`vigil bench uplink`: upload rate, bytes per read, alert latency, backlog drain time.

Everything real except the network distance: the reference ingest service runs as a separate
process (``python -m hil.ingest_server``, its port read from the handshake line) on loopback
with mutual TLS; the uplink is the production :class:`firmware.uplink.Uplink` with
:class:`firmware.uplink.HttpsTransport`, gzip batches of 200 reads.

* ``reads_per_s`` / ``drain_100k_s``: 100,000 reads (10,000 with ``quick``, then scaled and
  flagged ``drain_extrapolated``) stored in the real encrypted :class:`storage.store.Store`,
  drained by ``Uplink.run`` with pacing off (``drain_rate_per_s`` very high): the ceiling of
  store decrypt + JSON + gzip + TLS + server on this machine.
* ``uplink_only_reads_per_s``: the same from an in-memory outbox (no store cost).
* ``bytes_per_read``: gzip body bytes on the wire per read; ``bytes_per_read_with_overhead``
  adds request/response headers and the acknowledgement.
* ``alert_latency_ms``: p50 of the time from ``put_read(read, [alert])`` + ``send_alert_now``
  (what the pipeline does after the vote) to the server's acknowledgement being applied
  (``mark_sent``), measured while the backlog drains at full speed (the worst case: a batch is
  in flight when the alert arrives); also p95/max and the same with an idle uplink.
* ``drain_100k_at_default_rate_s``: computed, 100,000 / the default ``drain_rate_per_s``.

``protocol="mqtt"`` (``vigil bench uplink --json --protocol mqtt``) measures the same figures
through :class:`firmware.uplink.mqtt.MqttTransport` to a real Mosquitto on loopback (TLS, client
certificates required, hil/mosquitto.py) with the agency consumer of hil/mqtt_consumer.py as a
separate process subscribed (a read counts once the broker's PUBACK is applied), then the HTTPS
run on the same machine, and puts the HTTPS ``reads_per_s``, ``alert_latency_ms`` and
``drain_100k_s`` beside them under ``"https"``.
"""

from __future__ import annotations

import gzip
import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from drivers.clock import SystemClock
from firmware.benchmarks.memory_outbox import MemoryOutbox
from firmware.benchmarks.workload import make_alert, make_read
from firmware.link.state import LinkStateMachine
from firmware.uplink.settings import UplinkSettings
from firmware.uplink.worker import Uplink
from hil.certs import TestPki, make_test_pki
from storage.keys import MemoryKeySource
from storage.settings import StoreSettings
from storage.store import Store

_REPO = Path(__file__).resolve().parents[2]


class _Broker:
    """Mosquitto and the de-duplicating agency consumer, each a child process."""

    def __init__(self, pki: TestPki, work: Path) -> None:
        from hil import mosquitto as mq

        binary = mq.mosquitto_binary()
        if binary is None:
            raise RuntimeError(mq.MISSING_REASON)
        self.broker = mq.Mosquitto(pki, work, binary)
        self.broker.start()
        self.url = self.broker.url
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hil.mqtt_consumer", "--broker", self.url, "--ca",
             str(pki.ca), "--cert", str(pki.consumer.cert), "--key", str(pki.consumer.key),
             "--agency", "bench", "--db", ":memory:", "--quiet", "--end-session"],
            cwd=_REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "VIGIL-CONSUMER-READY":
            self.close()
            raise RuntimeError("the MQTT consumer did not start")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.broker.stop()


class _Server:
    """The ingest service as a child process."""

    def __init__(self, pki: TestPki) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hil.ingest_server", "--port", "0",
             "--cert", str(pki.server.cert), "--key", str(pki.server.key),
             "--client-ca", str(pki.ca)],
            cwd=_REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "VIGIL-INGEST-PORT":
            self.proc.kill()
            raise RuntimeError(f"ingest server did not start: {line!r}")
        self.url = f"https://127.0.0.1:{int(line[1])}"

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class _Timed:
    """Delegates to an outbox; notes when watched alert ids are acknowledged."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.acked: dict[str, float] = {}
        self.body_bytes = 0

    def next_outbox_batch(self, max_items: int, max_bytes: int, include_images: bool = False
                          ) -> Sequence[Any]:
        batch: Sequence[Any] = self.inner.next_outbox_batch(max_items, max_bytes, include_images)
        return batch

    def mark_sent(self, item_ids: Sequence[str]) -> int:
        n = self.inner.mark_sent(item_ids)
        t = time.perf_counter()
        for i in item_ids:
            self.acked.setdefault(i, t)
        return int(n)

    def record_attempt(self, item_ids: Sequence[str]) -> Any:
        return self.inner.record_attempt(item_ids)

    def dead_letter(self, reasons: Mapping[str, str]) -> int:
        return int(self.inner.dead_letter(reasons))

    def outbox_depth(self) -> Any:
        return self.inner.outbox_depth()

    def audit(self, *a: Any, **k: Any) -> Any:
        return self.inner.audit(*a, **k)


def _settings(pki: TestPki, url: str) -> UplinkSettings:
    mqtt = url.startswith("mqtts://")
    return UplinkSettings(
        endpoint="" if mqtt else url, ca_file=str(pki.ca), cert_file=str(pki.client.cert),
        key_file=str(pki.client.key), device_id=pki.device_id, drain_rate_per_s=1e6,
        idle_poll_s=0.2, protocol="mqtt" if mqtt else "https", mqtt_broker=url if mqtt else "",
        mqtt_agency="bench", mqtt_site="loopback",
    )


def _uplink(settings: UplinkSettings, outbox: Any, link: LinkStateMachine,
            clock: SystemClock) -> Uplink:
    """The production worker on the settings' protocol (both lanes on one MQTT session)."""
    if settings.protocol != "mqtt":
        return Uplink(settings, outbox, link, clock)
    from firmware.uplink.mqtt import MqttTransport

    session = MqttTransport(settings, clock).start()
    if not session.wait_connected(10):
        session.close()
        raise RuntimeError(f"no MQTT connection to {settings.mqtt_broker}")
    return Uplink(settings, outbox, link, clock, transport=session, alert_transport=session)


def _read_payload(r: Any) -> dict[str, Any]:
    from storage import codec

    return codec.read_payload(r)  # exactly what the store hands the uplink


def _memory_run(pki: TestPki, url: str, n: int) -> dict[str, float]:
    rng = random.Random(3)
    ob = MemoryOutbox()
    t0 = datetime(2026, 11, 23, tzinfo=UTC)
    for i in range(n):
        r = make_read(rng, captured_at=t0 + timedelta(seconds=i))
        ob.add("read", r.read_id, _read_payload(r), r.captured_at)
    clock = SystemClock()
    link = LinkStateMachine(clock)
    link.on_success(0.0)
    link.on_success(0.0)
    sent_bodies: list[int] = []
    up = _uplink(_settings(pki, url), ob, link, clock)
    orig = up._transport.request

    def counting(method: str, path: str, body: bytes | None = None, **kw: Any) -> Any:
        if body is not None:
            sent_bodies.append(len(body))
        return orig(method, path, body, **kw)

    up._transport.request = counting  # type: ignore[method-assign, assignment]
    start = time.perf_counter()
    with up:
        while ob.outbox_depth()["reads"]:
            up.step()
        took = time.perf_counter() - start
        total = up.counters.bytes_total
    return {
        "uplink_only_reads_per_s": round(n / took, 1),
        "bytes_per_read": round(sum(sent_bodies) / n, 1),
        "bytes_per_read_with_overhead": round(total / n, 1),
    }


def _compression_ratio() -> float:
    rng = random.Random(5)
    reads = [_read_payload(make_read(rng)) for _ in range(200)]
    raw = json.dumps({"reads": reads}, separators=(",", ":")).encode()
    return round(len(raw) / len(gzip.compress(raw, 6)), 2)


def _latency(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    if not ms:
        return {}
    return {
        "p50": round(statistics.median(ms), 1),
        "p95": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 1),
        "max": round(ms[-1], 1),
        "n": len(ms),
    }


def _store_run(pki: TestPki, url: str, n: int, alerts: int, tmp: Path) -> dict[str, Any]:
    clock = SystemClock()
    store = Store.open(tmp / "bench.db", MemoryKeySource(),
                       StoreSettings(max_db_mb=100_000, group_commit_max=1024), clock,
                       background=False)
    rng = random.Random(11)
    try:
        futs = []
        for _ in range(n):
            futs.append(store.submit_read(make_read(rng, captured_at=clock.utcnow())))
            if len(futs) >= 2048:
                for f in futs:
                    f.result()
                futs.clear()
        for f in futs:
            f.result()
        timed = _Timed(store)
        link = LinkStateMachine(clock)
        up = _uplink(_settings(pki, url), timed, link, clock)
        stop = threading.Event()
        worker = threading.Thread(target=up.run, args=(stop,), name="bench-uplink")
        start = time.perf_counter()
        worker.start()
        sent_at: dict[str, float] = {}
        busy_lat: list[float] = []
        # alerts while the backlog drains
        while store.outbox_depth()["reads"] > 0:
            if len(sent_at) < alerts:
                r = make_read(rng, captured_at=clock.utcnow())
                a = make_alert(r, rng=rng)
                a = replace(a, raised_at=clock.utcnow())
                t = time.perf_counter()
                store.put_read(r, [a])
                up.send_alert_now(a.alert_id)
                sent_at[a.alert_id] = t
            time.sleep(0.25 if len(sent_at) < alerts else 0.05)
        drain = time.perf_counter() - start
        deadline = time.perf_counter() + 10
        while set(sent_at) - set(timed.acked) and time.perf_counter() < deadline:
            time.sleep(0.01)
        busy_lat = [timed.acked[k] - v for k, v in sent_at.items() if k in timed.acked]
        # the idle case
        idle_sent: dict[str, float] = {}
        for _ in range(max(5, alerts // 2)):
            r = make_read(rng, captured_at=clock.utcnow())
            a = replace(make_alert(r, rng=rng), raised_at=clock.utcnow())
            t = time.perf_counter()
            store.put_read(r, [a])
            up.send_alert_now(a.alert_id)
            idle_sent[a.alert_id] = t
            end = time.perf_counter() + 5
            while a.alert_id not in timed.acked and time.perf_counter() < end:
                time.sleep(0.002)
            time.sleep(0.1)
        idle_lat = [timed.acked[k] - v for k, v in idle_sent.items() if k in timed.acked]
        stop.set()
        worker.join(timeout=30)
        up.close()
        return {"drain_s": drain, "busy": _latency(busy_lat), "idle": _latency(idle_lat),
                "link": link.state.value}
    finally:
        store.close()


def run(quick: bool = False, protocol: str = "https") -> dict[str, Any]:
    if protocol not in ("https", "mqtt"):
        raise ValueError(f"protocol must be https or mqtt, got {protocol!r}")
    with tempfile.TemporaryDirectory(prefix="vigil-bench-uplink-") as d:
        tmp = Path(d)
        pki = make_test_pki(tmp / "pki")
        out = _measure(pki, tmp, quick, protocol)
        if protocol == "mqtt":
            https = _measure(pki, tmp, quick, "https")
            out["https"] = {k: https[k] for k in ("reads_per_s", "alert_latency_ms",
                                                  "drain_100k_s")}
    try:
        from firmware.benchmarks.common import envelope
    except ImportError:
        return out
    return envelope("uplink", out)


def _measure(pki: TestPki, tmp: Path, quick: bool, protocol: str) -> dict[str, Any]:
    n_store = 10_000 if quick else 100_000
    n_mem = 5_000 if quick else 30_000
    work = tmp / protocol
    work.mkdir()
    target = _Broker(pki, work / "broker") if protocol == "mqtt" else _Server(pki)
    try:
        mem = _memory_run(pki, target.url, n_mem)
        st = _store_run(pki, target.url, n_store, 10 if quick else 30, work)
    finally:
        target.close()
    scale = 100_000 / n_store
    default_rate = UplinkSettings("", "", "", "", "").drain_rate_per_s
    return {
        "reads_per_s": round(n_store / st["drain_s"], 1),
        "drain_100k_s": round(st["drain_s"] * scale, 1),
        "drain_extrapolated": n_store != 100_000,
        "alert_latency_ms": st["busy"].get("p50"),
        "alert_latency_busy_ms": st["busy"],
        "alert_latency_idle_ms": st["idle"],
        **mem,
        "gzip_ratio": _compression_ratio(),
        "drain_100k_at_default_rate_s": round(100_000 / default_rate, 1),
        "batch_max_reads": UplinkSettings("", "", "", "", "").batch_max_reads,
        "quick": quick,
        "protocol": protocol,
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv[1:],
                         protocol="mqtt" if "mqtt" in sys.argv[1:] else "https"), indent=2))
