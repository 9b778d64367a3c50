"""Reference ingest service: what the agency endpoint must do, runnable on loopback.

A real HTTPS server (TLS >= 1.2, client certificate required and checked against the device CA)
implementing the wire format in docs/uplink.md:

* ``POST /v1/reads``  gzip JSON ``{"device_id", "batch_id", "reads": [{"id", ...}]}`` ->
  ``{"accepted": [ids], "rejected": [{"id", "reason"}]}``; a read id already held is accepted
  again and never stored twice (the server side of idempotent retries).
* ``POST /v1/alerts`` the same envelope with ``"alerts"``.
* Every batch may carry ``audit_checkpoint`` (the unit's signed audit head); ``POST
  /v1/audit-checkpoints`` carries one alone (the unit's heartbeat). The service keeps them per
  device in arrival order (``--checkpoints-out`` appends them to a JSON-lines file, the input of
  ``vigil audit verify --against``) and, given the unit's pinned key (``--audit-public-key``),
  raises an alarm on a bad signature, a head that goes backwards, or a second hash for a seq.
  ``GET /_control/audit-checkpoints?device_id=`` returns them as JSON lines.
* ``POST /v1/status`` gzip JSON ``{"device_id", "sent_at", "ota": {...}}``: the unit's status
  report (OTA: slot, phase, version, floor, last outcome, step, progress and the numbered steps
  not yet acknowledged). The service keeps the latest report and every step once per device
  (keyed on ``seq``, ``at``, ``step``); ``GET /_control/status?device_id=`` returns both.
* ``GET /v1/hotlists/<name>?since=<version>`` -> the signed hotlist bytes (a delta from
  ``since`` when one is published, else the latest full list), 204 when ``since`` is current.

It can be told to misbehave (:class:`Fault`): answer 5xx, stall, drop the connection before or
after storing, reset mid-body, half-accept a batch, or reject. Faults are set in-process
(:meth:`IngestServer.set_fault`) or, when run as a subprocess, by ``POST /_control/fault``.

With ``db`` (``--db FILE``) what it acknowledged (reads, alerts, receipts, audit checkpoints) is
kept in SQLite and committed before each answer (hil/ingest_ledger.py): a service killed and
started again on the same file still de-duplicates against everything it ever answered 200 for.
``GET /_control/read-ids`` lists the read ids it holds, in first-arrival order.

Run: ``python -m hil.ingest_server --port 0 --cert server.crt --key server.key --client-ca ca.crt``
prints ``VIGIL-INGEST-PORT <port>`` as its first line (or ``--make-pki DIR`` to generate one).
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import math
import socket
import ssl
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hil.ingest_ledger import Ledger

log = logging.getLogger(__name__)

FAULT_MODES = (
    "none",
    "status",  # answer ``status`` (5xx) without storing
    "stall",  # store, then wait ``stall_s`` before answering (client times out, retries)
    "drop_before",  # close the connection without reading or storing
    "drop_after",  # store, then close without an answer
    "reset_mid_body",  # store, send headers and half the body, close
    "half_accept",  # store and accept every other read, reject the rest with "retry"
    "reject",  # reject every read with ``reject_reason``
)


@dataclass
class Fault:
    mode: str = "none"
    status: int = 503
    stall_s: float = 30.0
    reject_reason: str = "invalid"
    remaining: int | None = None  # requests still affected; None = until cleared
    paths: tuple[str, ...] = ("/v1/reads", "/v1/alerts")

    def __post_init__(self) -> None:
        if self.mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {self.mode!r}")
        self.paths = tuple(self.paths)


@dataclass(frozen=True)
class PublishedHotlist:
    name: str
    version: int
    base_version: int | None  # None: full list
    blob: bytes


@dataclass
class IngestState:
    """What the server holds. ``receipts`` counts every time an id arrived (retries included);
    ``reads``/``alerts`` hold each id once, in first-arrival order (``order``)."""

    reads: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    receipts: Counter[str] = field(default_factory=Counter)
    order: list[tuple[str, str]] = field(default_factory=list)  # (kind, id)
    requests: Counter[str] = field(default_factory=Counter)
    body_bytes: int = 0
    batches: int = 0
    checkpoints: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    audit_alarms: list[str] = field(default_factory=list)
    status: dict[str, dict[str, Any]] = field(default_factory=dict)  # device -> latest report
    ota_steps: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # device -> steps


class IngestServer:
    """The service, in-process. ``start()`` binds (port 0 = any), ``close()`` stops."""

    def __init__(
        self,
        cert: Path,
        key: Path,
        client_ca: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        check_device_id: bool = True,
        audit_public_key: bytes | None = None,
        checkpoints_out: Path | None = None,
        db: Path | None = None,
    ) -> None:
        self.audit_public_key = audit_public_key
        self.checkpoints_out = checkpoints_out
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(cert), str(key))
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=str(client_ca))
        self._ctx = ctx
        self.check_device_id = check_device_id
        self.state = IngestState()
        self._ledger = Ledger(db) if db is not None else None
        if self._ledger is not None:
            self._ledger.load(self.state)
        self.lock = threading.Lock()
        self._fault = Fault()
        self._hotlists: dict[str, list[PublishedHotlist]] = {}
        self._closing = threading.Event()
        self._httpd = _Httpd((host, port), _Handler, self)
        self._thread: threading.Thread | None = None

    # -- control -----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> IngestServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
            name="ingest-server", daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._ledger is not None:
            with self.lock:
                self._ledger.close()

    def __enter__(self) -> IngestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_fault(self, fault: Fault | None) -> None:
        with self.lock:
            self._fault = fault or Fault()

    def publish_hotlist(
        self, name: str, version: int, blob: bytes, base_version: int | None = None
    ) -> None:
        with self.lock:
            self._hotlists.setdefault(name, []).append(
                PublishedHotlist(name, version, base_version, blob)
            )

    def summary(self) -> dict[str, Any]:
        with self.lock:
            s = self.state
            return {
                "reads": len(s.reads),
                "alerts": len(s.alerts),
                "duplicates": sum(c - 1 for c in s.receipts.values() if c > 1),
                "requests": dict(s.requests),
                "body_bytes": s.body_bytes,
                "batches": s.batches,
                "audit_checkpoints": sum(len(v) for v in s.checkpoints.values()),
                "audit_alarms": list(s.audit_alarms),
            }

    # -- request handling (called from handler threads) --------------------------------------
    def take_fault(self, path: str) -> Fault:
        with self.lock:
            f = self._fault
            if f.mode == "none" or path not in f.paths:
                return Fault()
            if f.remaining is not None:
                f.remaining -= 1
                if f.remaining <= 0:
                    self._fault = Fault()
            return f

    def ingest(self, kind: str, body: dict[str, Any], fault: Fault) -> dict[str, Any]:
        items = body.get(kind)
        if not isinstance(items, list):
            raise ValueError(f"body has no list {kind!r}")
        accepted: list[str] = []
        rejected: list[dict[str, str]] = []
        new: list[tuple[str, dict[str, Any]]] = []
        fresh: set[str] = set()
        with self.lock:
            self.state.batches += 1
            store = self.state.reads if kind == "reads" else self.state.alerts
            for n, item in enumerate(items):
                rid = item.get("id") if isinstance(item, dict) else None
                if not isinstance(rid, str) or not rid:
                    rejected.append({"id": str(rid), "reason": "invalid"})
                    continue
                if fault.mode == "reject":
                    rejected.append({"id": rid, "reason": fault.reject_reason})
                    continue
                if fault.mode == "half_accept" and n % 2 == 1:
                    rejected.append({"id": rid, "reason": "retry"})
                    continue
                if rid not in store and rid not in fresh:
                    fresh.add(rid)
                    new.append((rid, item))
                accepted.append(rid)
            if self._ledger is not None:  # on disk before memory and before the answer
                self._ledger.record_batch(kind, new, accepted)
            for rid, item in new:
                store[rid] = item
                self.state.order.append((kind, rid))
            self.state.receipts.update(accepted)
        return {"accepted": accepted, "rejected": rejected}

    def keep_checkpoint(self, device_id: str, doc: Any) -> None:
        """Keep a published audit checkpoint (once per distinct head), check the stream."""
        if not isinstance(doc, dict):
            return
        from storage.audit import checkpoint_from_json, published_problems

        with self.lock:
            kept = self.state.checkpoints.setdefault(device_id, [])
            if kept and kept[-1] == doc:
                return
            kept.append(doc)
            if self._ledger is not None:
                self._ledger.record_checkpoint(device_id, doc)
            if self.checkpoints_out is not None:
                with open(self.checkpoints_out, "a", encoding="utf-8") as f:
                    f.write(json.dumps(doc, sort_keys=True) + "\n")
            if self.audit_public_key is None:
                return
            try:
                stream = [checkpoint_from_json(d) for d in kept]
            except ValueError as e:
                self.state.audit_alarms.append(f"{device_id}: {e}")
                return
            for p in published_problems(stream, self.audit_public_key):
                if p not in self.state.audit_alarms:
                    self.state.audit_alarms.append(f"{device_id}: {p}")

    def keep_status(self, device_id: str, body: dict[str, Any]) -> None:
        """Keep a status report: the latest per device, and each OTA step once."""
        ota = body.get("ota")
        if not isinstance(ota, dict) or not isinstance(ota.get("events", []), list):
            raise ValueError("status report has no 'ota' object with an 'events' list")
        with self.lock:
            self.state.status[device_id] = {k: v for k, v in body.items() if k != "device_id"}
            steps = self.state.ota_steps.setdefault(device_id, [])
            seen = {(e.get("seq"), e.get("at"), e.get("step")) for e in steps}
            for e in ota.get("events", []):
                if isinstance(e, dict) and (e.get("seq"), e.get("at"), e.get("step")) not in seen:
                    steps.append(e)

    def status_of(self, device_id: str) -> dict[str, Any]:
        with self.lock:
            return {"latest": self.state.status.get(device_id),
                    "ota_steps": list(self.state.ota_steps.get(device_id, []))}

    def checkpoints_jsonl(self, device_id: str) -> str:
        with self.lock:
            return "".join(json.dumps(d, sort_keys=True) + "\n"
                           for d in self.state.checkpoints.get(device_id, []))

    def hotlist_for(self, name: str, since: int | None) -> PublishedHotlist | str | None:
        with self.lock:
            pubs = self._hotlists.get(name)
            if not pubs:
                return None
            latest = max(p.version for p in pubs)
            if since is not None and since >= latest:
                return "current"
            if since is not None:
                for p in pubs:
                    if p.base_version == since and p.version == latest:
                        return p
            fulls = [p for p in pubs if p.base_version is None]
            return max(fulls, key=lambda p: p.version) if fulls else None


class _Httpd(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr: tuple[str, int], handler: type, app: IngestServer) -> None:
        self.app = app
        super().__init__(addr, handler)

    def get_request(self):  # type: ignore[no-untyped-def]
        sock, addr = super().get_request()
        # Headers and body go out as separate writes: without NODELAY, Nagle + delayed ACK
        # add ~40 ms to every keep-alive exchange.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Handshake in the handler thread, not the accept loop, so one stuck client cannot
        # block the others.
        return self.app._ctx.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        ), addr

    def finish_request(self, request, client_address):  # type: ignore[no-untyped-def]
        try:
            request.settimeout(10)
            request.do_handshake()
            request.settimeout(None)
        except (ssl.SSLError, OSError) as e:
            log.info("TLS handshake refused: %s", e, extra={"peer": client_address[0]})
            return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):  # type: ignore[no-untyped-def]
        log.debug("connection error", exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one TLS handshake per connection, not per batch
    server: _Httpd

    def log_message(self, format: str, *args: Any) -> None:  # base signature
        log.debug(format, *args)

    def _send_json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _peer_cn(self) -> str | None:
        cert = self.connection.getpeercert()  # type: ignore[attr-defined]
        for rdn in (cert or {}).get("subject", ()):
            for k, v in rdn:
                if k == "commonName":
                    return str(v)
        return None

    def _read_body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        if n > 64 * 1024 * 1024:
            raise ValueError("body too large")
        raw = self.rfile.read(n)
        with self.server.app.lock:
            self.server.app.state.body_bytes += n
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        return raw

    def do_POST(self) -> None:  # http.server naming
        app = self.server.app
        path = urlsplit(self.path).path
        with app.lock:
            app.state.requests[path] += 1
        if path == "/_control/fault":
            body = json.loads(self._read_body() or b"{}")
            app.set_fault(Fault(**body) if body else None)
            self._send_json(200, {"ok": True})
            return
        if path not in ("/v1/reads", "/v1/alerts", "/v1/audit-checkpoints", "/v1/status"):
            self._send_json(404, {"error": "not found"})
            return
        fault = app.take_fault(path)
        if fault.mode == "drop_before":
            self.close_connection = True
            self.connection.close()
            return
        try:
            body = json.loads(self._read_body())
            if not isinstance(body, dict):
                raise ValueError("body is not an object")
        except (ValueError, OSError) as e:
            self._send_json(400, {"error": f"bad body: {e}"})
            return
        if app.check_device_id and body.get("device_id") != self._peer_cn():
            self._send_json(403, {"error": "device_id does not match the client certificate"})
            return
        if fault.mode == "status":
            self._send_json(fault.status, {"error": "injected"})
            return
        if path == "/v1/status":
            try:
                app.keep_status(str(body.get("device_id")), body)
            except ValueError as e:
                self._send_json(400, {"error": str(e)})
                return
            self._send_json(200, {"ok": True})
            return
        app.keep_checkpoint(str(body.get("device_id")), body.get("audit_checkpoint"))
        if path == "/v1/audit-checkpoints":
            self._send_json(200, {"ok": True})
            return
        kind = "reads" if path == "/v1/reads" else "alerts"
        try:
            result = app.ingest(kind, body, fault)
        except ValueError as e:
            self._send_json(400, {"error": str(e)})
            return
        if fault.mode == "stall":
            app._closing.wait(fault.stall_s)
        if fault.mode == "drop_after":
            self.close_connection = True
            self.connection.close()
            return
        if fault.mode == "reset_mid_body":
            data = json.dumps(result).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: math.ceil(len(data) / 2)])
            self.wfile.flush()
            self.close_connection = True
            self.connection.close()
            return
        self._send_json(200, result)

    def do_GET(self) -> None:
        app = self.server.app
        parts = urlsplit(self.path)
        with app.lock:
            app.state.requests[parts.path] += 1
        if parts.path == "/_control/state":
            self._send_json(200, app.summary())
            return
        if parts.path == "/_control/audit-checkpoints":
            device = parse_qs(parts.query).get("device_id", [""])[0]
            data = app.checkpoints_jsonl(device).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if parts.path == "/_control/read-ids":
            with app.lock:
                ids = [rid for kind, rid in app.state.order if kind == "reads"]
            self._send_json(200, ids)
            return
        if parts.path == "/_control/status":
            self._send_json(200, app.status_of(parse_qs(parts.query).get("device_id", [""])[0]))
            return
        if parts.path == "/v1/health":
            self._send_json(200, {"ok": True})
            return
        prefix = "/v1/hotlists/"
        if not parts.path.startswith(prefix):
            self._send_json(404, {"error": "not found"})
            return
        fault = app.take_fault(parts.path)
        if fault.mode == "status":
            self._send_json(fault.status, {"error": "injected"})
            return
        name = parts.path[len(prefix):]
        since_s = parse_qs(parts.query).get("since", [None])[0]
        try:
            since = int(since_s) if since_s not in (None, "") else None
        except ValueError:
            self._send_json(400, {"error": "since must be an integer"})
            return
        pub = app.hotlist_for(name, since)
        if pub is None:
            self._send_json(404, {"error": f"no hotlist {name!r}"})
        elif pub == "current":
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            assert isinstance(pub, PublishedHotlist)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(pub.blob)))
            self.send_header("X-Hotlist-Version", str(pub.version))
            self.end_headers()
            self.wfile.write(pub.blob)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hil.ingest_server", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cert", type=Path)
    p.add_argument("--key", type=Path)
    p.add_argument("--client-ca", type=Path)
    p.add_argument("--make-pki", type=Path, help="generate a test PKI here and serve with it")
    p.add_argument("--no-device-check", action="store_true")
    p.add_argument("--audit-public-key", help="the unit's checkpoint key (hex, `vigil audit "
                   "pubkey` at commissioning): alarm on a bad or backward checkpoint")
    p.add_argument("--checkpoints-out", type=Path,
                   help="append every published audit checkpoint here (JSON lines)")
    p.add_argument("--db", type=Path, help="keep what is acknowledged in this SQLite file "
                   "(a restart on the same file remembers it)")
    a = p.parse_args(argv)
    if a.make_pki:
        from hil.certs import make_test_pki

        pki = make_test_pki(a.make_pki)
        a.cert, a.key, a.client_ca = pki.server.cert, pki.server.key, pki.ca
    if not (a.cert and a.key and a.client_ca):
        p.error("--cert, --key and --client-ca are required (or --make-pki DIR)")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    srv = IngestServer(a.cert, a.key, a.client_ca, a.host, a.port, not a.no_device_check,
                       bytes.fromhex(a.audit_public_key) if a.audit_public_key else None,
                       a.checkpoints_out, a.db)
    srv.start()
    print(f"VIGIL-INGEST-PORT {srv.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        srv.close()
        print(json.dumps(srv.summary()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["Fault", "IngestServer", "IngestState", "PublishedHotlist", "main"]
