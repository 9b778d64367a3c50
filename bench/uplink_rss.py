"""The daemon's steady RSS on the simulation rig with each uplink protocol:
``.venv/bin/python bench/uplink_rss.py [--rounds N]``.

Runs the real daemon (``python -m firmware.cli run --config ...``) on the simulation rig's config
(replay of the bundled footage, real time, looped) three ways, ``--rounds`` times each,
interleaved: no uplink (the simulation rig as shipped), ``protocol = "mqtt"`` to a real Mosquitto
on loopback (hil/mosquitto.py, a de-duplicating consumer subscribed), and HTTPS to the reference
ingest service. For each run: VmRSS sampled every second for 30 s after a 10 s warm-up, median
and maximum in MB. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hil.certs import TestPki, make_test_pki  # noqa: E402
from hil.ingest_server import IngestServer  # noqa: E402
from hil.mosquitto import Mosquitto, mosquitto_binary  # noqa: E402
from hil.mqtt_consumer import DedupConsumer  # noqa: E402

SIM = (REPO / "firmware" / "config" / "defaults" / "simulation.toml").read_text()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _measure(config: str, work: Path, warmup_s: float = 10.0, window_s: float = 30.0
             ) -> dict[str, float]:
    work.mkdir(parents=True)
    (work / "vigil.toml").write_text(config)
    env = dict(os.environ, STATE_DIRECTORY=str(work / "state"))
    env.pop("NOTIFY_SOCKET", None)
    with (work / "stderr.log").open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "firmware.cli", "run", "--config", str(work / "vigil.toml")],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err)
        try:
            time.sleep(warmup_s)
            samples = []
            end = time.monotonic() + window_s
            while time.monotonic() < end:
                samples.append(_rss_mb(proc.pid))
                time.sleep(1.0)
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    return {"median_mb": round(statistics.median(samples), 1), "max_mb": round(max(samples), 1)}


def _uplink(pki: TestPki, **keys: str) -> str:
    lines = [f'{k} = "{v}"' for k, v in {**keys, "ca_file": pki.ca,
                                         "cert_file": pki.client.cert,
                                         "key_file": pki.client.key}.items()]
    return SIM + "\n[uplink]\n" + "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    binary = mosquitto_binary()
    if binary is None:
        raise SystemExit("mosquitto is needed: apt-get install -y mosquitto")
    out: dict[str, list[dict[str, float]]] = {"none": [], "mqtt": [], "https": []}
    with tempfile.TemporaryDirectory(prefix="vigil-rss-") as d:
        tmp = Path(d)
        pki = make_test_pki(tmp / "pki", device_id="sim-1")  # the rig's camera_id
        with Mosquitto(pki, tmp / "broker", binary) as broker, \
                IngestServer(pki.server.cert, pki.server.key, pki.ca) as srv:
            consumer = DedupConsumer(broker.url, pki.ca, pki.consumer.cert, pki.consumer.key,
                                     "metro").start()
            try:
                for i in range(a.rounds):
                    out["none"].append(_measure(SIM, tmp / f"none-{i}"))
                    out["mqtt"].append(_measure(_uplink(
                        pki, protocol="mqtt", mqtt_broker=broker.url, mqtt_agency="metro",
                        mqtt_site="sim"), tmp / f"mqtt-{i}"))
                    out["https"].append(_measure(_uplink(pki, endpoint=srv.url),
                                                 tmp / f"https-{i}"))
            finally:
                consumer.close(end_session=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
