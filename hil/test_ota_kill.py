"""SIGKILL at every step of staging and switching, in a real process; then the unit starts.

A child process stages a bundle and switches to it, killing itself with SIGKILL just before
its k-th filesystem step (``SlotFS.on_step``), for every k. Then ``vigil ota boot`` runs in a
fresh process, as systemd's ExecStartPre would, and the unit must stand on a complete slot with
links and state in agreement.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from hil.ota_rig import REPO
from ota.bundle import build
from ota.slotfs import SlotFS

pytestmark = pytest.mark.hil

CHILD = textwrap.dedent("""
    import os, signal, sys
    from datetime import UTC, datetime
    from pathlib import Path
    from ota.install import stage
    from ota.slotfs import SlotFS
    from ota.slots import Switch

    root, bundle, kill_at = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    count = [0]

    def on_step(name):
        if count[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        count[0] += 1

    fs = SlotFS(root, on_step)
    state = stage(fs, fs.load(), bundle)
    fs.apply(state, Switch(datetime.now(UTC), uplink_ok=False))
    print(count[0])
""")


def test_sigkill_at_every_step_leaves_a_startable_unit(tmp_path):
    src = tmp_path / "src" / "firmware"
    src.mkdir(parents=True)
    (src / "new.py").write_text("NEW = True\n")
    bundle = tmp_path / "b.vbundle"
    build(bundle, name="vigil", version="1.1.0", kind="app", trees={"app": src.parent})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    probe = tmp_path / "probe"
    SlotFS(probe).init("1.0.0")
    done = subprocess.run([sys.executable, "-c", CHILD, str(probe), str(bundle), "-1"],
                          env=env, capture_output=True, text=True, check=True)
    steps = int(done.stdout.strip())
    assert steps >= 6
    for k in range(steps):
        root = tmp_path / f"k{k}"
        SlotFS(root).init("1.0.0")
        proc = subprocess.run([sys.executable, "-c", CHILD, str(root), str(bundle), str(k)],
                              env=env, capture_output=True, text=True)
        assert proc.returncode == -9, proc.stderr
        boot = subprocess.run([sys.executable, "-m", "ota.cli", "ota", "boot", "--root",
                               str(root)], cwd=REPO, capture_output=True, text=True)
        assert boot.returncode == 0, boot.stderr
        out = json.loads(boot.stdout)
        fs = SlotFS(root)
        current = fs.link_target("current")
        assert current == out["active"] and fs.is_complete(current), (k, out)
        assert out["version"] in ("1.0.0", "1.1.0")
        if out["version"] == "1.1.0":
            assert (root / "current" / "app" / "firmware" / "new.py").is_file()
            assert out["phase"] == "trial"
        else:
            assert out["phase"] in ("idle", "staged")
