"""A nearly full state filesystem: the real daemon starts, keeps reading, and says from the start
that it is unwell (``disk_low`` in `vigil status` and systemd's STATUS= line, audited once), with
``[store] min_free_mb`` set above what this machine has free."""

from __future__ import annotations

import shutil

import pytest

from hil.rig import SimulatedRig
from hil.test_daemon_lifecycle import _config

pytestmark = pytest.mark.hil


def _status_lines(rig: SimulatedRig) -> list[str]:
    with rig.notify.lock:
        return [line for _, m in rig.notify.messages for line in m.split("\n")
                if line.startswith("STATUS=")]


def test_nearly_full_state_filesystem_degrades_with_disk_low(tmp_path) -> None:
    free_mb = shutil.disk_usage(tmp_path).free / 2**20
    over = min(1048576.0, free_mb * 2 + 1)
    if over <= free_mb:
        pytest.skip(f"{free_mb:.0f} MB free: more than [store] min_free_mb can ask for")
    rig = SimulatedRig(tmp_path, _config(tmp_path, f"\n[store]\nmin_free_mb = {over:.0f}\n"))
    try:
        rig.start()
        rig.wait_ready()
        rig.wait_for(lambda: any("degraded (disk_low" in s for s in _status_lines(rig)), 30,
                     "STATUS= naming disk_low")
        rig.wait_for(lambda: len(rig.reads) >= 1, 60, "a read while the disk is low")
        status = rig.control("status")
        rc, _ = rig.stop()
    finally:
        rig.close()
    assert rc == 0
    assert status["state"] == "degraded" and "disk_low" in status["reasons"]
    store = rig.open_store()
    try:
        changes = [e for e in store.audit_entries() if e.action == "health.change"]
    finally:
        store.close()
    assert any("disk_low" in str(e.detail) for e in changes)
