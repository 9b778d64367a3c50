"""`vigil bench ota`: delta size, verification speed, and stage-to-commit on the simulated rig.

Figures:

* ``delta_ratio``: bytes of a zstd patch-from delta / bytes of the full bundle, for a code-only
  change (one function added to ``firmware/uplink/worker.py``) of this checkout's application
  (code, models and sample footage).
* ``verify_50mb_s``: seconds to check a 50 MB bundle's length and SHA-256 against the signed
  targets metadata (what a unit does before unpacking), best of three.
* ``stage_to_commit_s``: from the slot state ``staged`` to ``committed`` with the real daemon on
  the simulated rig: switch, exit 75, ``vigil ota boot`` from the committed slot, the new
  version's start-up and self-test, and the health gate (READY, frames, held 1 s). The
  repository is a local directory here (the USB path), so no web server is needed.

``quick`` verifies 5 MB and skips the daemon run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from firmware.benchmarks.common import envelope

REPO = Path(__file__).resolve().parents[2]
APP_PACKAGES = ("firmware", "drivers", "inference", "storage", "ota")


def _app(dest: Path, version: str, change: bool = False) -> Path:
    from ota.bundle import SKIP_NAMES

    for pkg in APP_PACKAGES:
        shutil.copytree(REPO / pkg, dest / pkg, ignore=shutil.ignore_patterns(*SKIP_NAMES, "*.pyc"))
    ver = dest / "firmware" / "version.py"
    ver.write_text(ver.read_text().replace('VERSION = "0.1.0"', f'VERSION = "{version}"'))
    if change:
        up = dest / "firmware" / "uplink" / "worker.py"
        up.write_text(up.read_text() + "\n\ndef _bench_change() -> int:\n    return 2\n")
    return dest


def _delta_ratio(tmp: Path) -> dict[str, Any]:
    from ota.bundle import build
    from ota.delta import make_delta

    old, new = tmp / "old.vbundle", tmp / "new.vbundle"
    build(old, name="vigil", version="1.1.0", kind="app",
          trees={"app": _app(tmp / "a", "1.1.0")})
    build(new, name="vigil", version="1.1.0", kind="app",
          trees={"app": _app(tmp / "b", "1.1.0", change=True)})
    t = time.perf_counter()
    make_delta(old, new, tmp / "d.vdelta")
    took = time.perf_counter() - t
    delta, full = (tmp / "d.vdelta").stat().st_size, new.stat().st_size
    return {"delta_ratio": round(delta / full, 5), "delta_bytes": delta, "full_bytes": full,
            "delta_make_s": round(took, 2)}


def _verify(tmp: Path, mb: int) -> float:
    from tuf.api.metadata import TargetFile

    path = tmp / "big.bin"
    with path.open("wb") as f:
        for _ in range(mb):
            f.write(os.urandom(1 << 20))
    info = TargetFile.from_file("stable/app.vbundle", str(path), ["sha256"])
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        with path.open("rb") as f:
            info.verify_length_and_hashes(f)
        best = min(best, time.perf_counter() - t)
    path.unlink()
    return round(best, 3)


def _stage_to_commit(tmp: Path) -> float:
    from ota.bundle import build
    from ota.repository import KeySet, VendorRepository, keygen
    from ota.slotfs import SlotFS
    from ota.slots import Phase

    root_json = keygen(tmp / "keys")
    keys = KeySet.load(tmp / "keys")
    repo = VendorRepository(tmp / "repo")
    repo.init(root_json)
    bundle = tmp / "v.vbundle"
    build(bundle, name="vigil", version="1.1.0", kind="app",
          trees={"app": _app(tmp / "src", "1.1.0")})
    target = "stable/app.vbundle"
    repo.add_targets({target: bundle}, keys,
                     custom={target: {"vigil": {"version": "1.1.0", "kind": "app"}}})
    repo.publish(keys)
    ota_root, state_dir = tmp / "ota", tmp / "state"
    fs = SlotFS(ota_root)
    fs.init("1.0.0", adopt=REPO)
    cfg = tmp / "vigil.toml"
    cfg.write_text(f"""
[unit]
camera_id = "bench-ota"
state_dir = "{state_dir}"
site_latitude = 45.0
site_longitude = -122.0
[camera]
backend = "replay"
loop = true
realtime = true
[illuminator]
pin_factory = "mock"
[ota]
enabled = true
repository = "{repo.path}"
trusted_root = "{root_json}"
root_dir = "{ota_root}"
check_interval_s = 1.0
gate_hold_s = 1.0
""")
    env = {k: v for k, v in os.environ.items() if k not in ("VIGIL_CONFIG", "NOTIFY_SOCKET")}
    staged_at = committed_at = None
    proc: subprocess.Popen[bytes] | None = None
    t_end = time.monotonic() + 300
    try:
        while time.monotonic() < t_end and committed_at is None:
            if proc is None or proc.poll() is not None:
                # the part of systemd OTA needs: ExecStartPre from `committed`, run `current`
                subprocess.run([sys.executable, "-m", "firmware.cli", "ota", "boot", "--root",
                                str(ota_root)], cwd=(ota_root / "committed" / "app").resolve(),
                               env=env, capture_output=True, timeout=60, check=True)
                proc = subprocess.Popen([sys.executable, "-m", "firmware.cli", "run", "--config",
                                         str(cfg)], cwd=(ota_root / "current" / "app").resolve(),
                                        env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
            state = fs.load()
            if state is not None:
                if staged_at is None and state.phase in (Phase.STAGED, Phase.TRIAL):
                    staged_at = time.monotonic()
                if state.phase is Phase.IDLE and state.committed == "b":
                    committed_at = time.monotonic()
            time.sleep(0.05)
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=15)
    if staged_at is None or committed_at is None:
        raise RuntimeError("the update did not commit within 300 s")
    return round(committed_at - staged_at, 2)


def run(quick: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vigil-bench-ota-") as d:
        tmp = Path(d)
        (tmp / "delta").mkdir()
        figures: dict[str, Any] = _delta_ratio(tmp / "delta")
        figures["verify_mb"] = 5 if quick else 50
        figures["verify_50mb_s" if not quick else "verify_5mb_s"] = _verify(tmp, 5 if quick
                                                                            else 50)
        (tmp / "rig").mkdir()
        figures["stage_to_commit_s"] = None if quick else _stage_to_commit(tmp / "rig")
    return envelope("ota", figures)


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv)))
