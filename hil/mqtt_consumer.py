"""A minimal agency-side consumer for Vigil over MQTT: de-duplicates by read id.

What an agency runs behind its broker (docs/uplink.md, "MQTT"), small enough to read in one go:

* a persistent MQTT 5 session (``clean_start`` false, a session expiry), so messages published
  while the consumer is down are queued by the broker, not lost;
* a *shared* subscription ``$share/<group>/vigil/<agency>/+/+/reads`` (and ``alerts``): run
  several copies with the same group and the broker hands each message to one of them, which
  is how the consumer scales out;
* ``vigil/<agency>/+/+/health`` (not shared, retained): which units are alive, their backlog;
  ``.../audit``: each unit's signed audit head (also carried in every reads envelope);
  ``.../status``: each unit's status report (its latest OTA state, and every OTA step once);
* each message is the uplink's gzip JSON envelope; every read (alert) is stored under its id
  with ``INSERT OR IGNORE`` into SQLite, *then* the message is acknowledged (manual PUBACK), so a
  consumer killed between the two gets the message again and stores nothing twice. QoS 1 is
  at-least-once; this table makes it exactly-once at the agency.

Run: ``python -m hil.mqtt_consumer --broker mqtts://broker:8883 --ca ca.crt --cert agency.crt
--key agency.key --agency metro --db reads.sqlite`` prints one JSON line per new read or alert.
"""

from __future__ import annotations

import argparse
import gzip
import json
import signal
import sqlite3
import ssl
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions


class DedupConsumer:
    """Receives every unit's reads and alerts of one agency, keeps each id once."""

    def __init__(self, broker: str, ca: Path, cert: Path, key: Path, agency: str, *,
                 group: str = "ingest", client_id: str = "agency-consumer-1",
                 db: str = ":memory:", on_new: Callable[[str, dict[str, Any]], None] | None = None
                 ) -> None:
        u = urlsplit(broker)
        self.host, self.port = u.hostname or "localhost", u.port or 8883
        self.filters = [f"$share/{group}/vigil/{agency}/+/+/{kind}" for kind in ("reads", "alerts")]
        self.filters.append(f"$share/{group}/vigil/{agency}/+/+/audit")
        # Without a subscriber the broker answers "no matching subscribers" and the unit
        # sends its status report again every few seconds: subscribe even if unused.
        self.filters.append(f"$share/{group}/vigil/{agency}/+/+/status")
        # Health is not shared: every consumer (dashboard) wants every unit's retained state.
        self.filters.append(f"vigil/{agency}/+/+/health")
        self.health: dict[str, dict[str, Any]] = {}  # device_id -> its last health message
        self.audit_heads: dict[str, dict[str, Any]] = {}  # device_id -> last signed audit head
        self.ota: dict[str, dict[str, Any]] = {}  # device_id -> its latest OTA status
        self.ota_steps: dict[str, list[dict[str, Any]]] = {}  # device_id -> each step once
        self.db = sqlite3.connect(db, check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS items (kind TEXT, id TEXT PRIMARY KEY, "
                        "device_id TEXT, body TEXT)")
        self.lock = threading.Lock()
        self.messages = 0
        self.receipts: Counter[str] = Counter()  # per id, every time it arrived
        self.on_new = on_new
        ctx = ssl.create_default_context(cafile=str(ca))
        ctx.load_cert_chain(str(cert), str(key))
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=paho.MQTTv5)
        self.client.tls_set_context(ctx)
        self.client.manual_ack_set(True)  # acknowledge only once stored
        self.client.reconnect_delay_set(1, 10)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.connected = threading.Event()

    def _keep_status(self, device: str, ota: dict[str, Any]) -> None:
        with self.lock:
            self.ota[device] = ota
            steps = self.ota_steps.setdefault(device, [])
            seen = {(e.get("seq"), e.get("at"), e.get("step")) for e in steps}
            steps.extend(e for e in ota.get("events", [])
                         if (e.get("seq"), e.get("at"), e.get("step")) not in seen)

    def start(self) -> DedupConsumer:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 7 * 24 * 3600
        self.client.connect(self.host, self.port, 30, clean_start=False, properties=props)
        self.client.loop_start()
        return self

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            return
        client.subscribe([(f, SubscribeOptions(qos=1)) for f in self.filters])
        self.connected.set()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        kind = msg.topic.rsplit("/", 1)[1]
        if kind == "health":
            doc = json.loads(msg.payload)
            with self.lock:
                self.health[str(doc.get("device_id"))] = doc
            client.ack(msg.mid, msg.qos)
            return
        doc = json.loads(gzip.decompress(msg.payload))
        if kind == "audit":  # verify it with `vigil audit verify --against` (docs/storage.md)
            with self.lock:
                self.audit_heads[str(doc.get("device_id"))] = doc.get("audit_checkpoint", {})
            client.ack(msg.mid, msg.qos)
            return
        if kind == "status":
            self._keep_status(str(doc.get("device_id")), doc.get("ota") or {})
            client.ack(msg.mid, msg.qos)
            return
        with self.lock:
            self.messages += 1
            with self.db:
                for item in doc[kind]:
                    self.receipts[item["id"]] += 1
                    cur = self.db.execute("INSERT OR IGNORE INTO items VALUES (?, ?, ?, ?)",
                                          (kind, item["id"], doc["device_id"], json.dumps(item)))
                    if cur.rowcount and self.on_new is not None:
                        self.on_new(kind, item)
        client.ack(msg.mid, msg.qos)  # after the commit: a crash before it means a redelivery

    def ids(self, kind: str) -> set[str]:
        with self.lock:
            return {r[0] for r in self.db.execute("SELECT id FROM items WHERE kind = ?", (kind,))}

    def summary(self) -> dict[str, int]:
        with self.lock:
            stored = self.db.execute("SELECT count(*) FROM items").fetchone()[0]
            dup = sum(n - 1 for n in self.receipts.values())
            return {"messages": self.messages, "stored": stored, "duplicates_seen": dup}

    def close(self, end_session: bool = False) -> None:
        """Disconnect. ``end_session`` retires this consumer for good: its session (and with
        it its place in the shared group) is dropped, else the broker keeps queueing its share
        of the messages for it until the session expires."""
        props = None
        if end_session:
            props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 0
        self.client.disconnect(properties=props)
        self.client.loop_stop()
        self.db.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--broker", required=True)
    ap.add_argument("--ca", type=Path, required=True)
    ap.add_argument("--cert", type=Path, required=True)
    ap.add_argument("--key", type=Path, required=True)
    ap.add_argument("--agency", required=True)
    ap.add_argument("--group", default="ingest")
    ap.add_argument("--client-id", default="agency-consumer-1")
    ap.add_argument("--db", default="vigil-reads.sqlite")
    ap.add_argument("--quiet", action="store_true", help="no line per read (benchmarks)")
    ap.add_argument("--end-session", action="store_true",
                    help="on exit, drop the session (retire this consumer from the group)")
    a = ap.parse_args(argv)

    def show(kind: str, item: dict[str, Any]) -> None:
        print(json.dumps({"kind": kind, "id": item["id"], "created_at": item["created_at"]}),
              flush=True)

    c = DedupConsumer(a.broker, a.ca, a.cert, a.key, a.agency, group=a.group,
                      client_id=a.client_id, db=a.db, on_new=None if a.quiet else show).start()
    if not c.connected.wait(30):
        print("vigil-consumer: not connected", file=sys.stderr)
        return 1
    print("VIGIL-CONSUMER-READY", flush=True)  # the handshake a parent process waits for
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        c.close(end_session=a.end_session)
    return 0


if __name__ == "__main__":
    sys.exit(main())
