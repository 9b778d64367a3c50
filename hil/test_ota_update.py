"""OTA on the simulated rig: the real daemon, its repository on a real nginx, a small systemd.

Skipped (with the reason) where Debian's nginx is not installed: `apt-get install nginx-light`.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import timedelta
from pathlib import Path

import pytest

from hil.ota_rig import NGINX, REPO, Nginx, SlotService, make_bundle
from hil.rig import running
from ota.delta import make_delta
from ota.repository import KeySet, VendorRepository, keygen
from ota.slotfs import SlotFS

pytestmark = [pytest.mark.hil,
              pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install "
                                 "nginx-light): the OTA HIL needs a real web server")]

TARGET = "stable/app.vbundle"


class Vendor:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.keys_dir = tmp / "keys"
        self.root_json = keygen(self.keys_dir)
        self.keys = KeySet.load(self.keys_dir)
        self.repo = VendorRepository(tmp / "www")
        self.repo.init(self.root_json)

    def release(self, bundle: Path, version: str, keys: KeySet | None = None,
                **extra: object) -> None:
        self.repo.add_targets({TARGET: bundle}, keys or self.keys,
                              custom={TARGET: {"vigil": {"version": version, "kind": "app",
                                                         **extra}}})
        self.repo.publish(self.keys)


def _config(tmp: Path, url: str, root_json: Path, ota_root: Path, **ota: object) -> Path:
    extra = "\n".join(f"{k} = {json.dumps(v)}" for k, v in ota.items())
    path = tmp / "vigil.toml"
    path.write_text(f"""
[unit]
camera_id = "hil-ota-1"
state_dir = "{tmp / 'state'}"
site_latitude = 45.0
site_longitude = -122.0

[camera]
backend = "replay"
loop = true
realtime = true
fps = 10.0

[illuminator]
pin_factory = "mock"

[supervisor]
backoff_initial_s = 0.1
backoff_max_s = 1.0

[ota]
enabled = true
repository = "{url}"
trusted_root = "{root_json}"
root_dir = "{ota_root}"
check_interval_s = 1.0
gate_hold_s = 1.0
{extra}
""")
    return path


@pytest.fixture
def rig(tmp_path):
    vendor = Vendor(tmp_path)
    nginx = Nginx(vendor.repo.path, tmp_path / "nginx", limit_rate="400k")
    nginx.start()
    ota_root = tmp_path / "ota"
    SlotFS(ota_root).init("1.0.0", adopt=REPO)
    svc = SlotService(ota_root, _config(tmp_path, nginx.url, vendor.root_json, ota_root,
                                        trial_deadline_s=25.0, trial_max_boots=2),
                      tmp_path / "state")
    yield vendor, nginx, svc, ota_root
    svc.stop()
    nginx.kill()


def _ota(st: dict) -> dict:
    return st.get("ota") or {}


def test_update_cut_at_half_resumes_commits_then_a_delta_commits(rig):
    vendor, nginx, svc, ota_root = rig
    bundle = make_bundle(vendor.tmp, "1.1.0")
    svc.start()
    st = svc.wait_for(lambda s: running(s) and _ota(s).get("step"), 90,
                      "the daemon running with its OTA worker")
    assert st["version"] == "0.1.0" and _ota(st)["slot"] == "a"
    vendor.release(bundle, "1.1.0")
    part_dir = ota_root / "downloads"
    size = bundle.stat().st_size
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        parts = list(part_dir.glob("*.part")) if part_dir.exists() else []
        if parts and parts[0].stat().st_size >= size // 2:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the download never reached half")
    nginx.kill()  # the link drops at ~50 %
    cut_at = parts[0].stat().st_size
    assert cut_at < size
    svc.wait_for(lambda s: _ota(s).get("step") == "download_failed", 60,
                 "the worker to notice the dropped link")
    nginx.start()
    st = svc.wait_for(lambda s: s.get("version") == "1.1.0" and _ota(s).get("phase") == "idle",
                      120, "the new version committed")
    o = _ota(st)
    assert o["slot"] == "b" and o["committed_slot"] == "b" and o["floor"] == "1.1.0"
    assert o["last"].startswith("committed 1.1.0")
    bundle_lines = [ln for ln in nginx.log_lines() if "/targets/" in ln]
    assert bundle_lines[-1].startswith("206 "), bundle_lines
    resumed_from = int(bundle_lines[-1].split('"bytes=')[1].split("-")[0])
    assert resumed_from > 0 and resumed_from <= cut_at
    assert int(bundle_lines[-1].split()[1]) == size - resumed_from, "only the rest was sent"
    assert svc.starts[0].slot == "a" and svc.starts[-1].slot == "b"
    assert svc.starts[0].rc == 75

    # A code-only follow-up arrives as a delta against the committed 1.1.0 (slot b).
    follow = make_bundle(vendor.tmp, "1.1.1")
    delta = vendor.tmp / "1.1.1-from-1.1.0.vdelta"
    fields = make_delta(bundle, follow, delta)
    dname = "stable/app-from-1.1.0.vdelta"
    vendor.repo.add_targets(
        {TARGET: follow, dname: delta}, vendor.keys,
        custom={TARGET: {"vigil": {"version": "1.1.1", "kind": "app"}},
                dname: {"vigil": {"version": "1.1.1", "kind": "app", "delta_from": "1.1.0",
                                  **fields}}})
    vendor.repo.publish(vendor.keys)
    st = svc.wait_for(lambda s: s.get("version") == "1.1.1" and _ota(s).get("phase") == "idle",
                      120, "the delta update committed")
    assert _ota(st)["slot"] == "a" and _ota(st)["floor"] == "1.1.1"
    fetched = [ln.split()[-1] for ln in nginx.log_lines() if "/targets/" in ln]
    assert fetched[-1].endswith(".app-from-1.1.0.vdelta"), fetched
    assert delta.stat().st_size < 0.2 * follow.stat().st_size
    svc.stop()
    with svc_store(svc) as store:
        actions = [e.action for e in store.audit_entries() if e.action.startswith("ota.")]
    for step in ("ota.downloading", "ota.download_failed", "ota.verified", "ota.staged",
                 "ota.trial", "ota.committed", "ota.delta_applied"):
        assert step in actions, actions


def svc_store(svc: SlotService):  # type: ignore[no-untyped-def]
    from firmware import config
    from firmware.app.daemon import open_store

    return open_store(config.load(svc.config))


def test_attacks_are_refused_with_nothing_changed(rig):
    vendor, _nginx, svc, ota_root = rig
    good = make_bundle(vendor.tmp, "1.4.0")
    vendor.release(good, "1.0.0")  # the repository offers what is installed
    svc.start()
    svc.wait_for(lambda s: running(s) and _ota(s).get("step") == "up_to_date", 90,
                 "an up-to-date unit")
    before = SlotFS(ota_root).load()
    meta = vendor.repo.meta_dir

    def refused(substring: str, what: str) -> None:
        st = svc.wait_for(lambda s: substring in str(_ota(s).get("last_error")), 60, what)
        assert _ota(st)["phase"] == "idle" and _ota(st)["slot"] == "a"
        assert SlotFS(ota_root).load() == before, "the slot state did not change"
        assert not SlotFS(ota_root).is_complete("b")

    def clean() -> None:
        vendor.release(good, "1.0.0")
        svc.wait_for(lambda s: _ota(s).get("step") == "up_to_date", 60, "a clean repository")

    attacker = KeySet.load(keygen(vendor.tmp / "attacker").parent)
    vendor.release(good, "9.0.0", keys=attacker)
    refused("Unsigned", "bad signature refused")
    clean()

    vendor.release(good, "1.4.0")
    served = next((vendor.repo.targets_dir / "stable").glob("*.app.vbundle"))
    data = bytearray(served.read_bytes())
    data[len(data) // 2] ^= 0xFF
    served.write_bytes(bytes(data))
    refused("SHA-256", "wrong hash refused")
    clean()

    vendor.repo.publish(vendor.keys, timestamp_expiry=timedelta(seconds=-1))
    refused("Expired", "expired metadata refused")
    clean()

    old_ts = (meta / "timestamp.json").read_bytes()
    vendor.repo.publish(vendor.keys)
    svc.wait_for(lambda s: _ota(s).get("step") == "up_to_date", 60, "newer timestamp seen")
    time.sleep(1.5)
    (meta / "timestamp.json").write_bytes(old_ts)
    refused("BadVersionNumber", "replayed metadata refused")
    clean()

    last_targets = max(meta.glob("*.targets.json"), key=lambda p: int(p.name.split(".")[0]))
    vendor.release(good, "1.0.0")
    newest = max(meta.glob("*.targets.json"), key=lambda p: int(p.name.split(".")[0]))
    shutil.copyfile(last_targets, newest)
    refused("version", "mix-and-match refused")
    clean()

    vendor.release(good, "0.9.0")
    refused("downgrade", "downgrade refused")
    assert [s.slot for s in svc.starts] == ["a"], "the daemon never restarted"


@pytest.mark.slow
def test_bad_updates_roll_back_by_themselves(rig):
    """A version that never sees frames fails the gate; one that crashes at start loops."""
    vendor, _nginx, svc, ota_root = rig
    svc.start()
    svc.wait_for(lambda s: running(s), 90, "running")
    t0 = time.monotonic()
    vendor.release(make_bundle(vendor.tmp, "1.2.0", sabotage="no_frames"), "1.2.0")
    st = svc.wait_for(lambda s: "rolled back from 1.2.0" in str(_ota(s).get("last"))
                      and s.get("version") == "0.1.0", 150, "rollback after a failed gate")
    took = time.monotonic() - t0
    assert "frames" in _ota(st)["last"] and _ota(st)["slot"] == "a"
    assert took < 25.0 + 60.0, took  # the deadline plus download, staging and two starts
    t0 = time.monotonic()
    vendor.release(make_bundle(vendor.tmp, "1.3.0", sabotage="crash"), "1.3.0")
    st = svc.wait_for(lambda s: "rolled back from 1.3.0" in str(_ota(s).get("last")), 150,
                      "rollback after a crash loop")
    assert "crash loop" in _ota(st)["last"] and st["version"] == "0.1.0"
    crashed = [s for s in svc.starts if s.rc == 3]
    assert len(crashed) == 2, [(s.slot, s.rc) for s in svc.starts]
    state = SlotFS(ota_root).load()
    assert state is not None and state.bad_version == "1.3.0" and state.floor == "1.0.0"
