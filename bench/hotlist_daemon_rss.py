"""The daemon's steady RSS on the simulation rig holding a signed 1M-entry hotlist.

    .venv/bin/python bench/hotlist_daemon_rss.py [ENTRIES]   # default 1,000,000

Signs a list (agency side), has it accepted into a fresh state directory exactly as a poll
would (verify, stream-parse, build the encrypted index, raise the floor in the store), then
starts `vigil run` with ``[hotlists]`` configured -- it opens the stored index at start -- and
samples VmRSS for 30 s (``firmware.benchmarks.startup.measure``). ``fetched``: the daemon
fetches the same list from the reference ingest service (mTLS) at start and builds the index
in its child process while it runs, sampled for 60 s; ``uplink_no_list`` is that run without
``[hotlists]`` (what the uplink alone costs). The same run without any list or uplink is the
baseline. Prints one JSON object.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drivers.clock import SystemClock
from firmware import config
from firmware.app.wiring import open_store
from firmware.benchmarks.startup import measure
from firmware.link.hotlists import HotlistUpdater, sign_hotlist
from inference.hotlist_matcher import HotlistEntry


def _entries(n: int) -> list[HotlistEntry]:
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    out = []
    for i in range(n):
        a, b, c = letters[i % 23], letters[i // 23 % 23], letters[i // 529 % 23]
        out.append(HotlistEntry(f"{a}{b}{i % 100:02d}{c}{i // 12167:03d}", "stolen", 1 + i % 9))
    return out


def main(n: int) -> dict[str, object]:
    agency = Ed25519PrivateKey.generate()
    pub = base64.b64encode(agency.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()
    blob = sign_hotlist(agency, "national", 1, _entries(n), compress=True)
    out: dict[str, object] = {"entries": n, "signed_mib": round(len(blob) / 2**20, 1)}
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        tmpdir = Path(tmp)
        cfg = tmpdir / "vigil.toml"
        cfg.write_text(config.SIMULATION_CONFIG.read_text()
                       + f'\n[hotlists]\nagency_public_key = "{pub}"\nnames = ["national"]\n')
        env = dict(os.environ, STATE_DIRECTORY=str(tmpdir / "st"), VIGIL_CONFIG=str(cfg))
        os.environ.update(STATE_DIRECTORY=env["STATE_DIRECTORY"])
        settings = config.load(cfg)
        with open_store(settings) as store:
            up = HotlistUpdater(settings.hotlists, None, store.derive_key("hotlist"),
                                SystemClock(), floors=store.version_floors())
            out["index_entries"] = up.accept(blob).entries
            up.close()
        out["with_list"] = measure(env, tmpdir, 30.0)
    out["fetched"] = _fetched(blob, pub, True)
    out["uplink_no_list"] = _fetched(blob, pub, False)
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        env = dict(os.environ, STATE_DIRECTORY=str(Path(tmp) / "st"))
        env.pop("VIGIL_CONFIG", None)
        out["without_list"] = measure(env, Path(tmp), 30.0)
    return out


def _fetched(blob: bytes, pub: str, hotlists: bool) -> dict[str, object]:
    """The daemon with the HTTPS uplink to the reference ingest service; with ``hotlists`` it
    fetches the list at start and builds its index while running."""
    from hil.certs import make_test_pki
    from hil.ingest_server import IngestServer

    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        tmpdir = Path(tmp)
        pki = make_test_pki(tmpdir / "pki")
        with IngestServer(pki.server.cert, pki.server.key, pki.ca, check_device_id=False) as srv:
            srv.publish_hotlist("national", 1, blob)
            cfg = tmpdir / "vigil.toml"
            cfg.write_text(config.SIMULATION_CONFIG.read_text() + f"""
[uplink]
endpoint = "{srv.url}"
ca_file = "{pki.ca}"
cert_file = "{pki.client.cert}"
key_file = "{pki.client.key}"
""" + (f'\n[hotlists]\nagency_public_key = "{pub}"\nnames = ["national"]\n' if hotlists else ""))
            env = dict(os.environ, STATE_DIRECTORY=str(tmpdir / "st"), VIGIL_CONFIG=str(cfg))
            got = measure(env, tmpdir, 60.0)
            got["hotlist_requests"] = srv.summary()["requests"].get("/v1/hotlists/national", 0)
            got["index_written"] = (tmpdir / "st" / "hotlists" / "national.idx").exists()
        return got


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000), indent=2))
