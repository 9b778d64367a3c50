"""The real daemon on the simulated rig: READY, reads, SIGTERM, restarts, watchdog, SIGHUP."""

from __future__ import annotations

import signal
import time

import pytest

from hil.rig import SimulatedRig, running
from tests.kit.people import INVESTIGATOR

pytestmark = pytest.mark.hil


def _config(tmp_path, extra: str = "") -> str:
    return f"""
[unit]
camera_id = "hil-1"
site_latitude = 45.0
site_longitude = -122.0

[camera]
backend = "replay"
loop = true
realtime = true
fps = 10.0
stall_file = "{tmp_path / 'stall'}"

[illuminator]
pin_factory = "mock"

[logging]
reads_stdout = true

[watchdog]
stall_s = 1.5
interval_s = 0.3

[supervisor]
backoff_initial_s = 0.1
backoff_max_s = 1.0
{extra}
"""


@pytest.fixture
def rig(tmp_path):
    r = SimulatedRig(tmp_path, _config(tmp_path), env={"VIGIL_FAULT_INJECTION": "1"})
    yield r
    r.close()


def test_ready_reads_then_clean_sigterm_with_nothing_lost(rig, tmp_path):
    rig.start()
    ready_s = rig.wait_ready()
    assert ready_s < 30
    rig.wait_for(lambda: len(rig.reads) >= 2, 60, "two reads on stdout")
    status = rig.control("status")
    assert running(status)
    assert status["workers"]["pipeline"]["state"] == "running"
    rc, took = rig.stop()
    assert rc == 0, "\n".join(rig.stderr_lines[-20:])
    assert took < 5.0
    assert rig.notify.any("STOPPING=1")
    # Every read the daemon acknowledged on stdout (including the ones drained at SIGTERM) is
    # in the encrypted store and decrypts.
    with rig.open_store() as store:
        printed = [r["read_id"] for r in rig.reads]
        stored = store.get_reads(printed, INVESTIGATOR)
        depth = store.outbox_depth()
    assert sorted(r.read_id for r in stored) == sorted(printed)
    assert {r.plate_text for r in stored} == {r["plate"] for r in rig.reads}
    assert depth["reads"] == len(printed)  # no uplink configured: all still queued


def test_killed_worker_is_restarted(rig):
    rig.start()
    rig.wait_ready()
    rig.control("inject_fault", worker="pipeline")
    rig.wait_for(lambda: rig.control("status")["workers"]["pipeline"]["restarts"] >= 1, 20,
                 "pipeline restart")
    rig.wait_for(lambda: rig.control("status")["workers"]["pipeline"]["state"] == "running", 20,
                 "pipeline running again")
    assert rig.log_events("worker crashed")
    rc, _ = rig.stop()
    assert rc == 0


def test_stalled_camera_stops_watchdog_pings_and_they_resume(rig, tmp_path):
    rig.start()
    rig.wait_ready()
    rig.wait_for(lambda: len(rig.notify.times_of("WATCHDOG=1")) >= 2, 20, "watchdog pings")
    (tmp_path / "stall").touch()
    time.sleep(1.5 + 1.0)  # stall_s plus a margin: pings must have stopped by now
    t_quiet = time.monotonic()
    time.sleep(2.0)
    pings = rig.notify.times_of("WATCHDOG=1")
    assert not [t for t in pings if t > t_quiet], "watchdog kept pinging with a stalled camera"
    assert rig.control("status")["watchdog_ok"] is False
    (tmp_path / "stall").unlink()
    rig.wait_for(lambda: any(t > t_quiet + 2 for t in rig.notify.times_of("WATCHDOG=1")), 20,
                 "pings resuming")
    rc, _ = rig.stop()
    assert rc == 0


def test_sighup_rejects_bad_config_and_keeps_running(rig, tmp_path):
    rig.start()
    rig.wait_ready()
    good = rig.config_path.read_text()
    rig.config_path.write_text(good + "\n[inference]\nthreads = 0\n")
    rig.signal(signal.SIGHUP)
    rig.wait_for(lambda: rig.log_events("reload rejected: keeping the running config"), 10,
                 "reload rejection")
    assert running(rig.control("status"))
    rig.config_path.write_text(good.replace('camera_id = "hil-1"', 'camera_id = "hil-2"'))
    rig.signal(signal.SIGHUP)
    rig.wait_for(lambda: rig.log_events("config reloaded"), 10, "reload")
    rc, _ = rig.stop()
    assert rc == 0
    # Both the rejected and the accepted change are in the audit chain.
    with rig.open_store() as store:
        actions = [(e.action, e.result) for e in store.audit_entries()]
        assert store.verify_audit().ok
    assert ("config.reload", "rejected") in actions
    assert ("config.reload", "ok") in actions
    assert actions.index(("daemon.stop", "ok")) > actions.index(("config.reload", "ok"))


def test_bad_config_exits_78_before_touching_hardware(tmp_path):
    r = SimulatedRig(tmp_path, "[camera]\nfps = 0\n")
    r.start()
    assert r.proc is not None
    rc = r.proc.wait(timeout=60)
    r.close()
    assert rc == 78
    assert not r.notify.any("READY=1")


@pytest.mark.parametrize("bad", ["x = " + "[" * 5000 + "]" * 5000 + "\n",
                                 "\n[watchdog]\nstall_s = nan\n"])
def test_sighup_with_a_pathological_config_keeps_running_then_drains(rig, tmp_path, bad):
    rig.start()
    rig.wait_ready()
    good = rig.config_path.read_text()
    rig.config_path.write_text(bad if bad.startswith("x") else good.replace(
        "[watchdog]\nstall_s = 1.5\n", "") + bad)
    rig.signal(signal.SIGHUP)
    rig.wait_for(lambda: rig.log_events("reload rejected: keeping the running config"), 10,
                 "reload rejection")
    pings = len(rig.notify.times_of("WATCHDOG=1"))
    rig.wait_for(lambda: len(rig.notify.times_of("WATCHDOG=1")) > pings + 2, 10,
                 "watchdog pings going on")
    assert running(rig.control("status"))
    rc, took = rig.stop()
    assert rc == 0 and took < 5.0
