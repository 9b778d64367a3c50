"""[uplink] protocol = "mqtt": MQTT 5 over mutual TLS to a real Mosquitto on loopback (client
certificates required, per-unit ACL), the pure parts (topics, PUBACK mapping, config rules), and
nudges that start the usual signed fetches."""

from __future__ import annotations

import gzip
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from drivers.clock import SystemClock
from firmware import config
from firmware.benchmarks.memory_outbox import MemoryOutbox
from firmware.errors import ConfigError
from firmware.link.hotlists import HotlistSettings, HotlistUpdater
from firmware.link.state import LinkState, LinkStateMachine
from firmware.uplink.mqtt import MqttTransport, puback_ack
from firmware.uplink.mqtt_topics import Topics, parse_broker, segment_problem
from firmware.uplink.nudges import NudgeScheduler
from firmware.uplink.settings import UplinkSettings
from firmware.uplink.transport import Response, TransportError
from firmware.uplink.wire import batch_ids, encode_batch
from firmware.uplink.worker import Uplink
from hil.certs import TestPki
from hil.mosquitto import Mosquitto
from hil.mqtt_consumer import DedupConsumer

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
AGENCY, SITE = "metro", "main-st"


def mqtt_settings(pki: TestPki, broker: Mosquitto, **kw: Any) -> UplinkSettings:
    base = UplinkSettings(
        ca_file=str(pki.ca), cert_file=str(pki.client.cert), key_file=str(pki.client.key),
        device_id=pki.device_id, protocol="mqtt", mqtt_broker=broker.url, mqtt_agency=AGENCY,
        mqtt_site=SITE, batch_max_reads=50, timeout_s=3.0, connect_timeout_s=3.0,
        backoff_initial_s=0.2, backoff_max_s=1.0, drain_rate_per_s=1e6, idle_poll_s=0.1,
        mqtt_keepalive_s=10,
    )
    return replace(base, **kw)


def fill(outbox: MemoryOutbox, prefix: str, n: int) -> list[str]:
    ids = [f"{prefix}-{i:05d}" for i in range(n)]
    for i, rid in enumerate(ids):
        outbox.add("read", rid, {"plate": f"AB{i:04d}", "conf": 0.9}, T0 + timedelta(seconds=i))
    return ids


def wait_until(pred: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


@pytest.fixture(scope="module")
def consumer(broker: Mosquitto, pki: TestPki) -> Iterator[DedupConsumer]:
    c = DedupConsumer(broker.url, pki.ca, pki.consumer.cert, pki.consumer.key, AGENCY).start()
    assert c.connected.wait(10)
    yield c
    c.close(end_session=True)


@pytest.fixture
def session(pki: TestPki, broker: Mosquitto) -> Iterator[Callable[..., MqttTransport]]:
    opened: list[MqttTransport] = []

    def open_(settings: UplinkSettings | None = None, **kw: Any) -> MqttTransport:
        t = MqttTransport(settings or mqtt_settings(pki, broker), SystemClock(),
                          rng=random.Random(3), **kw).start()
        opened.append(t)
        return t

    yield open_
    for t in opened:
        t.close()


# -- pure parts ------------------------------------------------------------------------------

def test_topic_layout_and_nudge_topics() -> None:
    t = Topics("metro", "main-st", "cam-7")
    assert t.upload("/v1/reads") == "vigil/metro/main-st/cam-7/reads"
    assert t.upload("/v1/alerts") == "vigil/metro/main-st/cam-7/alerts"
    assert t.upload("/v1/audit-checkpoints") == "vigil/metro/main-st/cam-7/audit"
    assert t.health == "vigil/metro/main-st/cam-7/health"
    with pytest.raises(ValueError):
        t.upload("/v1/hotlists/stolen")
    assert set(t.subscriptions()) == {
        "vigil/metro/notify/hotlists", "vigil/metro/notify/ota",
        "vigil/metro/main-st/cam-7/notify/hotlists", "vigil/metro/main-st/cam-7/notify/ota"}
    assert t.nudge_of("vigil/metro/notify/ota") == "ota"
    assert t.nudge_of("vigil/metro/main-st/cam-8/notify/ota") is None  # another unit's
    assert t.nudge_of("vigil/metro/notify/reboot") is None


@pytest.mark.parametrize("bad", ["", "a/b", "a+", "#", "$SYS", "x" * 65, "tab\there"])
def test_topic_levels_that_would_widen_a_subscription_are_refused(bad: str) -> None:
    assert segment_problem(bad) is not None
    assert segment_problem("main-st_2") is None


def test_broker_url_is_tls_only() -> None:
    assert parse_broker("mqtts://broker.example.org").port == 8883
    assert parse_broker("mqtts://10.0.0.5:9883").host == "10.0.0.5"
    for bad in ("mqtt://broker:1883", "https://broker", "mqtts://u:p@broker",
                "mqtts://broker/path", "mqtts://:8883", "mqtts://broker:99999"):
        with pytest.raises(ValueError):
            parse_broker(bad)


def test_puback_reason_codes_map_to_acknowledgements() -> None:
    ids = ["r1", "r2"]
    assert json.loads(puback_ack(0x00, ids)) == {"accepted": ids}
    nobody = json.loads(puback_ack(0x10, ids))  # no matching subscribers: keep them queued
    assert nobody["accepted"] == [] and {r["reason"] for r in nobody["rejected"]} == {"retry"}
    for code, kind in ((0x97, "throttled"), (0x87, "refused"), (0x90, "refused"),
                       (0x99, "refused"), (0x80, "refused"), (0x91, "protocol")):
        with pytest.raises(TransportError) as e:
            puback_ack(code, ids)
        assert e.value.kind == kind


def test_batch_ids_read_the_encoded_envelope() -> None:
    ob = MemoryOutbox()
    fill(ob, "x", 3)
    items = ob.next_outbox_batch(10, 1 << 20)
    _, body = encode_batch("dev", "reads", items, 6, {"audit": [{"id": "not-a-read"}]})
    assert batch_ids(body, "reads") == ["x-00000", "x-00001", "x-00002"]
    with pytest.raises(TransportError):
        batch_ids(b"not gzip", "reads")


def _validate(uplink: dict[str, Any], unit: dict[str, Any] | None = None) -> config.Settings:
    return config.validate({"unit": {"site_latitude": 1.0, "site_longitude": 2.0,
                                     **(unit or {})}, "uplink": uplink}, "t.toml")


def test_config_validates_mqtt_in_the_one_validator() -> None:
    good = {"protocol": "mqtt", "mqtt_broker": "mqtts://broker:8883", "mqtt_agency": "metro",
            "mqtt_site": "main-st", "ca_file": "/ca", "cert_file": "/c", "key_file": "/k"}
    s = _validate(good, {"camera_id": "cam-7"})
    assert s.uplink.sends and s.uplink.device_id == "cam-7"
    assert _validate({}).uplink.protocol == "https"  # HTTPS stays the default
    bad: list[tuple[dict[str, Any], dict[str, Any], str]] = [
        ({"mqtt_broker": ""}, {}, "needs mqtt_broker"),
        ({"mqtt_broker": "mqtt://broker"}, {}, "mqtts://"),
        ({"mqtt_agency": "metro/+"}, {}, "mqtt_agency"),
        ({"mqtt_site": ""}, {}, "mqtt_site"),
        ({"mqtt_password": "s3cret"}, {}, "mqtt_username"),
        ({"key_file": ""}, {}, "key_file"),
        ({"protocol": "amqp"}, {}, "protocol"),
        ({}, {"camera_id": "cam#7"}, "camera_id"),
    ]
    for change, unit, words in bad:
        with pytest.raises(ConfigError, match=words.replace("+", r"\+")):
            _validate({**good, **change}, {"camera_id": "cam-7", **unit})
    shown = config.redacted(_validate({**good, "mqtt_username": "u", "mqtt_password": "pw"}))
    assert shown["uplink"]["mqtt_password"] == "<redacted>"


def test_nudges_are_coalesced_and_delayed_by_jitter() -> None:
    fired: list[float] = []
    done = threading.Event()

    def action() -> None:
        fired.append(time.monotonic())
        done.set()

    n = NudgeScheduler({"hotlists": action}, jitter_s=0.3, rng=random.Random(1))
    t0 = time.monotonic()
    for _ in range(5):
        n("hotlists")
    n("reboot")  # nothing acts on it: ignored
    assert done.wait(2)
    time.sleep(0.4)
    assert len(fired) == 1 and fired[0] - t0 <= 0.35
    n.close()


def test_hotlist_poll_now_polls_before_the_interval(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    polls: list[str] = []

    class Counting:
        def request(self, method: str, path: str, body: bytes | None = None,
                    headers: Any = None, params: Any = None) -> Response:
            polls.append(path)
            return Response(204, b"", 0.0, 0, 0)

        def close(self) -> None:
            pass

    import base64
    pub = base64.b64encode(Ed25519PrivateKey.generate().public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)).decode()
    hs = HotlistSettings(agency_public_key=pub, names=("stolen",), path=str(tmp_path),
                         poll_interval_s=3600.0)
    up = HotlistUpdater(hs, Counting(), b"k" * 32, SystemClock())
    stop = threading.Event()
    th = threading.Thread(target=up.run, args=(stop,), daemon=True)
    th.start()
    assert wait_until(lambda: len(polls) == 1, 5)
    up.poll_now()
    assert wait_until(lambda: len(polls) == 2, 2)  # not an hour later
    stop.set()
    th.join(2)
    assert not th.is_alive()


# -- against the real broker ------------------------------------------------------------------

def test_reads_leave_the_outbox_only_after_puback_and_arrive_once(
        pki: TestPki, broker: Mosquitto, consumer: DedupConsumer,
        session: Callable[..., MqttTransport]) -> None:
    ob = MemoryOutbox()
    ids = fill(ob, "once", 120)
    clock = SystemClock()
    link = LinkStateMachine(clock)
    broker.stop()  # the broker is down: nothing can be acknowledged
    try:
        t = session()
        up = Uplink(t.settings, ob, link, clock, transport=t, alert_transport=t)
        while up.counters.requests_failed < 3:
            delay = up.step()
            assert delay > 0
            time.sleep(delay)
        assert ob.outbox_depth()["reads"] == 120 and not ob.sent_order
        assert link.state is LinkState.DOWN
        assert up.counters.requests_failed == 3
    finally:
        broker.start()
    # Until the consumer is back and subscribed the broker answers "no matching subscribers"
    # and the reads stay; then they drain.
    deadline = time.monotonic() + 20
    while ob.outbox_depth()["reads"] and time.monotonic() < deadline:
        time.sleep(up.step())
    assert ob.outbox_depth()["reads"] == 0
    assert wait_until(lambda: set(ids) <= consumer.ids("reads"))
    assert all(consumer.receipts[i] == 1 for i in ids)
    assert up.counters.reads_sent == 120 and link.state is LinkState.UP
    assert t.status().as_dict()["session_present"] is not None


def test_no_subscriber_means_not_delivered_and_the_reads_stay(
        pki: TestPki, broker: Mosquitto, session: Callable[..., MqttTransport]) -> None:
    # Nobody subscribes to agency "nobody": Mosquitto answers PUBACK 0x10, so the reads stay.
    t = session(mqtt_settings(pki, broker, mqtt_agency="nobody"))
    ob = MemoryOutbox()
    fill(ob, "lonely", 5)
    up = Uplink(t.settings, ob, LinkStateMachine(SystemClock()), SystemClock(), transport=t)
    assert t.wait_connected(10)
    up.step()
    assert ob.outbox_depth()["reads"] == 5 and not ob.sent_order
    assert up.status().last_error == "5 not acknowledged"


def test_a_topic_outside_the_units_own_subtree_is_refused_and_kept(
        pki: TestPki, broker: Mosquitto, session: Callable[..., MqttTransport]) -> None:
    # The certificate says vigil-test-0001; publishing as another unit is denied by the ACL.
    t = session(mqtt_settings(pki, broker, device_id="someone-else"))
    ob = MemoryOutbox()
    fill(ob, "spoof", 3)
    link = LinkStateMachine(SystemClock())
    up = Uplink(t.settings, ob, link, SystemClock(), transport=t)
    assert t.wait_connected(10)
    up.step()
    assert ob.outbox_depth()["reads"] == 3 and not ob.sent_order
    assert up.status().last_error is not None and "refused" in up.status().last_error


def test_birth_retained_health_and_clean_goodbye(
        pki: TestPki, broker: Mosquitto, consumer: DedupConsumer,
        session: Callable[..., MqttTransport]) -> None:
    t = session(mqtt_settings(pki, broker, mqtt_health_interval_s=5.0),
                health=lambda: {"backlog": {"reads": 7}})
    assert t.wait_connected(10)
    assert wait_until(lambda: consumer.health.get(pki.device_id, {}).get("reason")
                      == "connected")
    birth = consumer.health[pki.device_id]
    assert birth["online"] is True and birth["backlog"] == {"reads": 7}
    t.close()
    assert wait_until(lambda: consumer.health[pki.device_id]["reason"] == "shutdown")
    assert consumer.health[pki.device_id]["online"] is False
    # retained: a dashboard that connects later still sees the unit's last word
    late = DedupConsumer(broker.url, pki.ca, pki.consumer.cert, pki.consumer.key, AGENCY,
                         client_id="dashboard-late").start()
    try:
        assert wait_until(lambda: pki.device_id in late.health)
        assert late.health[pki.device_id]["online"] is False
    finally:
        late.close(end_session=True)


def _publish_nudge(consumer: DedupConsumer, topic: str, payload: bytes) -> None:
    info = consumer.client.publish(topic, payload, qos=1)
    info.wait_for_publish(5)


def test_nudges_arrive_on_subscribed_topics_and_across_an_offline_spell(
        pki: TestPki, broker: Mosquitto, consumer: DedupConsumer,
        session: Callable[..., MqttTransport]) -> None:
    got: list[str] = []
    t = session(on_nudge=got.append)
    assert t.wait_connected(10)
    time.sleep(0.3)  # the SUBSCRIBE is on its way after CONNACK
    _publish_nudge(consumer, f"vigil/{AGENCY}/notify/hotlists", b"rm -rf / (ignored)")
    _publish_nudge(consumer, f"vigil/{AGENCY}/{SITE}/{pki.device_id}/notify/ota", b"")
    _publish_nudge(consumer, f"vigil/{AGENCY}/{SITE}/other-unit/notify/ota", b"")
    assert wait_until(lambda: got == ["hotlists", "ota"], 5)
    t.close()
    # offline: the broker keeps the persistent session and queues the nudge for it
    _publish_nudge(consumer, f"vigil/{AGENCY}/notify/hotlists", b"")
    again: list[str] = []
    t2 = session(on_nudge=again.append)
    assert wait_until(lambda: again == ["hotlists"], 10)
    assert t2.status().session_present is True


def test_a_broker_with_a_foreign_certificate_is_a_tls_failure(
        pki: TestPki, broker: Mosquitto, tmp_path: Path) -> None:
    rogue = Mosquitto(pki, tmp_path / "rogue", broker.binary, server=pki.server_foreign)
    with rogue:
        t = MqttTransport(mqtt_settings(pki, rogue), SystemClock()).start()
        try:
            with pytest.raises(TransportError) as e:
                t.request("POST", "/v1/reads", gzip.compress(b'{"reads": []}'))
            assert e.value.kind == "tls"
            assert not t.status().connected
        finally:
            t.close()


def test_fetches_are_not_carried_over_mqtt(pki: TestPki, broker: Mosquitto) -> None:
    t = MqttTransport(mqtt_settings(pki, broker), SystemClock())
    with pytest.raises(TransportError, match="HTTPS"):
        t.request("GET", "/v1/hotlists/stolen")
    t.close()


def test_the_audit_heartbeat_goes_to_the_audit_topic(
        pki: TestPki, broker: Mosquitto, consumer: DedupConsumer,
        session: Callable[..., MqttTransport]) -> None:
    t = session()
    assert t.wait_connected(10)
    head = {"seq": 12, "hash": "ab" * 32}
    body = gzip.compress(json.dumps({"device_id": pki.device_id,
                                     "audit_checkpoint": head}).encode())
    assert t.request("POST", "/v1/audit-checkpoints", body).status == 200
    assert wait_until(lambda: consumer.audit_heads.get(pki.device_id) == head)


def test_config_check_loads_the_certificates_for_mqtt_too(pki: TestPki, tmp_path: Path) -> None:
    good = {"protocol": "mqtt", "mqtt_broker": "mqtts://broker", "mqtt_agency": "metro",
            "mqtt_site": "main-st", "ca_file": str(pki.ca), "cert_file": str(pki.client.cert),
            "key_file": str(pki.client.key)}
    config.check_files(_validate(good, {"state_dir": str(tmp_path)}))
    missing = _validate({**good, "key_file": str(tmp_path / "nope.key")},
                        {"state_dir": str(tmp_path)})
    with pytest.raises(ConfigError, match="key_file"):
        config.check_files(missing)


def test_a_puback_that_does_not_come_keeps_the_reads_and_the_consumer_keeps_one_copy(
        pki: TestPki, broker: Mosquitto, consumer: DedupConsumer,
        session: Callable[..., MqttTransport]) -> None:
    import os
    import signal

    t = session(mqtt_settings(pki, broker, timeout_s=1.0))
    assert t.wait_connected(10)
    ob = MemoryOutbox()
    ids = fill(ob, "late", 10)
    clock = SystemClock()
    up = Uplink(t.settings, ob, LinkStateMachine(clock), clock, transport=t)
    assert broker.proc is not None
    os.kill(broker.proc.pid, signal.SIGSTOP)  # the broker hangs: no PUBACK within timeout_s
    try:
        up.step()
        assert ob.outbox_depth()["reads"] == 10 and not ob.sent_order
        assert up.counters.requests_failed == 1
    finally:
        os.kill(broker.proc.pid, signal.SIGCONT)
    # The broker wakes and delivers the first copy late; the resend is a second copy.
    deadline = time.monotonic() + 20
    while ob.outbox_depth()["reads"] and time.monotonic() < deadline:
        time.sleep(up.step())
    assert ob.outbox_depth()["reads"] == 0
    assert wait_until(lambda: set(ids) <= consumer.ids("reads"))
    assert wait_until(lambda: all(consumer.receipts[i] >= 2 for i in ids), 5)
    with consumer.lock:
        stored = consumer.db.execute(
            "SELECT count(*) FROM items WHERE id LIKE 'late-%'").fetchone()[0]
    assert stored == 10  # two copies arrived, one was kept


def test_the_byte_budget_stops_reads_over_mqtt_as_over_https(
        pki: TestPki, broker: Mosquitto, consumer: DedupConsumer,
        session: Callable[..., MqttTransport]) -> None:
    t = session(mqtt_settings(pki, broker, daily_bytes_cap=3000))
    assert t.wait_connected(10)
    ob = MemoryOutbox()
    fill(ob, "budget", 200)
    clock = SystemClock()
    up = Uplink(t.settings, ob, LinkStateMachine(clock), clock, transport=t)
    for _ in range(30):
        up.step()
    sent = up.counters.reads_sent
    assert 0 < sent < 200 and ob.outbox_depth()["reads"] == 200 - sent
    assert up.status().bytes_today >= 3000  # spent: the rest waits for tomorrow
    up.step()
    assert up.counters.reads_sent == sent


def test_an_ota_nudge_reaches_the_ota_workers_check(pki: TestPki, broker: Mosquitto) -> None:
    from types import SimpleNamespace

    from firmware.app.wiring import Links, _mqtt_session
    from firmware.link.timesync import TimeSync

    settings = _validate({"protocol": "mqtt", "mqtt_broker": broker.url, "mqtt_agency": AGENCY,
                          "mqtt_site": SITE, "ca_file": str(pki.ca),
                          "cert_file": str(pki.client.cert), "key_file": str(pki.client.key),
                          "mqtt_nudge_jitter_s": 0.0}, {"camera_id": pki.device_id})
    checked = threading.Event()
    components = SimpleNamespace(closables=[], extra_workers={
        "ota": SimpleNamespace(check_now=checked.set)})
    links = Links(TimeSync(SystemClock()))
    session = _mqtt_session(settings, SystemClock(), components, links)  # type: ignore[arg-type]
    try:
        assert components.extra_workers["mqtt"] is session
        nudges = components.closables[0]
        nudges("ota")
        assert checked.wait(2)
    finally:
        session.close()


def test_a_crashed_session_worker_is_rerun_on_the_same_connection_without_a_goodbye(
        pki: TestPki, broker: Mosquitto, consumer: DedupConsumer) -> None:
    t = MqttTransport(mqtt_settings(pki, broker), SystemClock())
    stop = threading.Event()
    crash = {"once": True}
    keep_fresh = t._keep_fresh

    def flaky(stop_: threading.Event) -> None:
        if crash.pop("once", False):
            raise RuntimeError("worker bug")
        keep_fresh(stop_)

    t._keep_fresh = flaky  # type: ignore[method-assign]
    crashed: list[BaseException] = []

    def supervised() -> None:
        try:
            t.run(stop)
        except RuntimeError as e:
            crashed.append(e)

    first = threading.Thread(target=supervised, daemon=True)
    first.start()
    first.join(10)
    assert crashed  # it crashed (the supervisor would restart it) ...
    assert t.status().connected  # ... but the connection is still up, no goodbye said
    assert wait_until(lambda: consumer.health.get(pki.device_id, {}).get("reason")
                      == "connected")
    again = threading.Thread(target=t.run, args=(stop,), daemon=True)
    again.start()
    time.sleep(0.3)
    stop.set()
    again.join(10)
    assert wait_until(lambda: consumer.health[pki.device_id]["reason"] == "shutdown")
    t.close()
