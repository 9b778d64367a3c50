"""The OTA worker with fakes: install -> switch -> gate -> commit / rollback, audit, RAUC."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.clock import FakeClock
from ota.bundle import build
from ota.repository import KeySet, VendorRepository, keygen
from ota.slotfs import SlotFS
from ota.slots import Phase
from ota.whole_image import RaucHook
from ota.worker import HealthSample, OtaSettings, OtaWorker, gate
from tests.kit.threads import run_until

TARGET = "stable/app.vbundle"


class Unit:
    """A worker over a directory repository (the USB path) with scripted health."""

    def __init__(self, tmp: Path, **settings: object) -> None:
        self.root_json = keygen(tmp / "keys")
        self.keys = KeySet.load(tmp / "keys")
        self.repo = VendorRepository(tmp / "repo")
        self.repo.init(self.root_json)
        self.tmp = tmp
        self.clock = FakeClock(datetime(2026, 12, 1, 3, 0, tzinfo=UTC))
        self.healthy = True
        self.restarts: list[str] = []
        self.audit: list[tuple[str, str]] = []
        kw: dict[str, object] = {"gate_hold_s": 1.0, "trial_deadline_s": 30.0, **settings}
        self.settings = OtaSettings(enabled=True, repository=str(self.repo.path),
                                    trusted_root=str(self.root_json), **kw)  # type: ignore[arg-type]
        self.fs = SlotFS(tmp / "ota")
        self.fs.init("1.0.0")

    def release(self, version: str) -> None:
        src = self.tmp / f"src-{version}"
        (src / "firmware").mkdir(parents=True, exist_ok=True)
        (src / "firmware" / "v.py").write_text(f"V = {version!r}\n")
        b = self.tmp / f"{version}.vbundle"
        build(b, name="vigil", version=version, kind="app", trees={"app": src})
        self.repo.add_targets({TARGET: b}, self.keys,
                              custom={TARGET: {"vigil": {"version": version, "kind": "app"}}})
        self.repo.publish(self.keys)

    def health(self) -> HealthSample:
        self.clock.advance(0.6)  # each look at the daemon takes a while of fake time
        return HealthSample(self.healthy, 10.0 if self.healthy else 0.0, 1, None)

    def worker(self, **kw: object) -> OtaWorker:
        w = OtaWorker(self.settings, self.fs.root, "cam-1", self.clock, health=self.health,
                      request_restart=self.restarts.append,
                      audit=lambda a, r, res, d: self.audit.append((a, res)),
                      **kw)  # type: ignore[arg-type]
        w.poll_s = 0.01
        return w


def _run_until(worker: OtaWorker, pred, timeout_s: float = 20.0) -> None:
    run_until(worker.run, pred, timeout_s)
    assert pred(), worker.status()


def test_install_switch_then_commit(tmp_path):
    u = Unit(tmp_path)
    u.release("1.1.0")
    _run_until(u.worker(), lambda: bool(u.restarts))
    state = u.fs.load()
    assert state is not None and state.phase is Phase.TRIAL and state.active == "b"
    assert u.fs.link_target("current") == "b"
    assert [a for a, _ in u.audit][:4] == ["ota.downloading", "ota.verified", "ota.staged",
                                           "ota.trial"]
    # the new version's worker runs the gate
    w = u.worker()
    _run_until(w, lambda: (u.fs.load() or state).phase is Phase.IDLE)
    state = u.fs.load()
    assert state is not None and state.committed == "b" and state.floor == "1.1.0"
    assert ("ota.committed", "ok") in u.audit
    st = w.status().as_dict()
    assert st["version"] == "1.1.0" and st["slot"] == "b"
    assert list(st) == ["step", "detail", "progress_pct", "last_check", "last_error", "history",
                        "bytes_today", "slot", "phase", "version", "committed_slot", "floor",
                        "last", "trial_boots"]  # pinned: `vigil status`
    assert list(st["history"][0]) == ["at", "step", "detail"]


def test_gate_failure_rolls_back_and_the_bad_version_is_not_retried(tmp_path):
    u = Unit(tmp_path)
    u.release("1.1.0")
    _run_until(u.worker(), lambda: bool(u.restarts))
    u.healthy = False
    _run_until(u.worker(), lambda: len(u.restarts) == 2)
    state = u.fs.load()
    assert state is not None and state.active == "a" and state.bad_version == "1.1.0"
    assert "frames" in state.last and ("ota.rolled_back", "failed") in u.audit
    u.healthy = True
    w = u.worker()
    _run_until(w, lambda: "rolled back before" in w.status().detail)
    assert len(u.restarts) == 2


def test_gate_rules():
    s = OtaSettings(require_read=True)
    assert gate(HealthSample(True, 9.0, 1, True), s, True) == []
    assert gate(HealthSample(False, 0.0, 0, False), s, True) == [
        "READY (self-test)", "frames (0.0 fps)", "a read", "uplink (reachable before the switch)"]
    assert gate(HealthSample(True, 9.0, 1, False), s, uplink_was_ok=False) == []


class FakeRauc:
    def __init__(self, boot_status: str) -> None:
        self.boot_status = boot_status
        self.calls: list[list[str]] = []

    def __call__(self, argv):
        self.calls.append(list(argv))
        if argv[:2] == ["rauc", "status"] and "--output-format=json" in argv:
            return json.dumps({"booted": "A", "slots": [
                {"rootfs.0": {"bootname": "A", "boot_status": self.boot_status}},
                {"rootfs.1": {"bootname": "B", "boot_status": "good"}}]})
        return ""


@pytest.mark.parametrize("healthy,status,expect", [
    (True, "bad", [["rauc", "status", "mark-good", "booted"]]),
    (True, "good", []),
    (False, "bad", [["rauc", "status", "mark-bad", "booted"], ["systemctl", "reboot"]]),
    (False, "good", []),  # a long-good image is not flipped because a camera failed
])
def test_rauc_verdict_follows_the_health_gate(tmp_path, healthy, status, expect):
    u = Unit(tmp_path, whole_image="rauc", trial_deadline_s=10.0)
    u.healthy = healthy
    rauc = FakeRauc(status)
    w = u.worker(whole_image=RaucHook(run=rauc))
    _run_until(w, lambda: w.status().last_check is not None)
    actions = [c for c in rauc.calls if "--output-format=json" not in c]
    assert actions == expect
