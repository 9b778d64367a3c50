"""A trial that hangs: the new version starts but is wedged before READY, so it neither crashes
(no restart, no boot count) nor runs its own health gate (whose deadline would roll it back).
The deadline is kept from outside it by the committed version's code: the deadline timer
(``systemd/vigil-ota-deadline.{timer,service}``: ``vigil ota overdue``, then a restart whose
boot check rolls back). The real daemon, the repository on Debian's nginx, the rig's systemd.
"""

from __future__ import annotations

import time

import pytest

from hil.ota_rig import NGINX, REPO, Nginx, SlotService, make_bundle
from hil.rig import running
from hil.test_ota_update import Vendor, _config
from ota.events import EventLog
from ota.slotfs import SlotFS
from ota.slots import Phase

pytestmark = [pytest.mark.hil,
              pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install "
                                 "nginx-light): the OTA HIL needs a real web server")]

DEADLINE_S = 10.0


def test_a_version_wedged_before_ready_is_rolled_back_by_the_deadline_timer(tmp_path):
    vendor = Vendor(tmp_path)
    nginx = Nginx(vendor.repo.path, tmp_path / "nginx")
    nginx.start()
    ota_root = tmp_path / "ota"
    fs = SlotFS(ota_root)
    fs.init("1.0.0", adopt=REPO)
    svc = SlotService(ota_root, _config(tmp_path, nginx.url, vendor.root_json, ota_root,
                                        trial_deadline_s=DEADLINE_S, trial_max_boots=3),
                      tmp_path / "state")
    try:
        svc.start()
        svc.wait_for(running, 90, "running")
        assert not svc.deadline_timer(), "nothing on trial: the timer must not restart"
        vendor.release(make_bundle(tmp_path, "1.2.0", sabotage="hang"), "1.2.0")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 120 and [s.slot for s in svc.starts][-1:] != ["b"]:
            time.sleep(0.2)
        assert [s.slot for s in svc.starts] == ["a", "b"], "the switch to 1.2.0 did not happen"
        switched = time.monotonic()
        # Wedged: well past its deadline it is still on trial, still running, never restarted
        # (what happened before the deadline timer existed: it stayed so until a reboot).
        time.sleep(DEADLINE_S + 4.0)
        state = fs.load()
        assert state is not None and state.phase is Phase.TRIAL and state.active == "b"
        assert svc.proc is not None and svc.proc.poll() is None and svc.status() is None
        assert len(svc.starts) == 2
        assert svc.deadline_timer(), "the trial is past its deadline"
        st = svc.wait_for(lambda s: running(s) and s.get("version") == "0.1.0", 90,
                          "the committed version running again")
        took = time.monotonic() - switched
        state = fs.load()
        assert state is not None and state.active == "a" and state.phase is Phase.IDLE
        assert state.bad_version == "1.2.0" and state.floor == "1.0.0"
        assert f"not passed within {DEADLINE_S:g} s" in state.last
        assert [s.slot for s in svc.starts] == ["a", "b", "a"]
        # the old version reports it (status, and the step journal that goes upstream)
        assert str((st.get("ota") or {}).get("last", "")).startswith("rolled back from 1.2.0")
        assert EventLog(ota_root).load()[-1].step == "rolled_back"
        assert took < DEADLINE_S + 4.0 + 60.0, took
        assert not svc.deadline_timer(), "after the rollback the timer has nothing to do"
    finally:
        svc.stop()
        nginx.kill()
