"""A/B slots: the pure state machine, and the filesystem under a kill at every step."""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ota.bundle import build
from ota.errors import BundleRefused, SlotTransitionError
from ota.install import stage
from ota.slotfs import SlotFS
from ota.slots import (
    Abort,
    Boot,
    HealthFailed,
    HealthPassed,
    Phase,
    PointCommitted,
    PointCurrent,
    Restart,
    SlotState,
    StageDone,
    StageStart,
    Switch,
    step,
)

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def _staged(version: str = "1.1.0") -> SlotState:
    s = SlotState(version_a="1.0.0", floor="1.0.0")
    s, _ = step(s, StageStart(version))
    s, _ = step(s, StageDone(version))
    return s


def test_happy_path_commits_and_raises_the_floor():
    s = _staged()
    assert s.phase is Phase.STAGED and s.active == "a" and s.version_b == "1.1.0"
    s, actions = step(s, Switch(T0, uplink_ok=True, deadline_s=120, max_boots=2))
    assert s.phase is Phase.TRIAL and s.active == "b" and s.committed == "a"
    assert PointCurrent("b") in actions and any(isinstance(a, Restart) for a in actions)
    s, _ = step(s, Boot(T0 + timedelta(seconds=5)))
    assert s.trial_boots == 1
    s, actions = step(s, HealthPassed("frames, read"))
    assert (s.phase, s.committed, s.floor) == (Phase.IDLE, "b", "1.1.0")
    assert actions[0] == PointCommitted("b")
    assert s.last.startswith("committed 1.1.0")


def test_failed_health_gate_rolls_back_and_remembers_the_bad_version():
    s, _ = step(_staged(), Switch(T0, uplink_ok=False))
    s, actions = step(s, HealthFailed("no frames within 120 s"))
    assert (s.phase, s.active, s.committed, s.floor) == (Phase.IDLE, "a", "a", "1.0.0")
    assert s.bad_version == "1.1.0" and "no frames" in s.last
    assert PointCurrent("a") in actions


def test_crash_loop_counted_across_starts_rolls_back():
    s, _ = step(_staged(), Switch(T0, uplink_ok=False, deadline_s=3600, max_boots=3))
    for i in range(3):
        s, actions = step(s, Boot(T0 + timedelta(seconds=i)))
        assert s.phase is Phase.TRIAL and not actions
    s, actions = step(s, Boot(T0 + timedelta(seconds=10)))
    assert s.phase is Phase.IDLE and s.active == "a" and "crash loop" in s.last


def test_deadline_passed_at_a_start_rolls_back():
    s, _ = step(_staged(), Switch(T0, uplink_ok=False, deadline_s=60))
    s, _ = step(s, Boot(T0 + timedelta(seconds=61)))
    assert s.active == "a" and "within 60 s" in s.last


def test_floor_never_goes_down():
    s, _ = step(_staged("2.0.0"), Switch(T0, uplink_ok=False))
    s, _ = step(s, HealthPassed())
    assert s.floor == "2.0.0"
    s, _ = step(s, StageStart("1.5.0"))  # a signed downgrade exception may stage it ...
    s, _ = step(s, StageDone("1.5.0"))
    s, _ = step(s, Switch(T0, uplink_ok=False))
    s, _ = step(s, HealthPassed())
    assert s.running_version == "1.5.0" and s.floor == "2.0.0"  # ... but the floor stays


@pytest.mark.parametrize("state,event", [
    (SlotState(), StageDone("1.0.0")),
    (SlotState(), Switch(T0, True)),
    (SlotState(), HealthPassed()),
    (SlotState(), HealthFailed("x")),
    (SlotState(phase=Phase.TRIAL, active="b", target_version="1.1.0"), StageStart("1.2.0")),
    (SlotState(), Abort("x")),
])
def test_illegal_transitions_raise(state, event):
    with pytest.raises(SlotTransitionError):
        step(state, event)


def test_state_round_trips_through_json():
    s = _staged()
    assert SlotState.from_dict(s.to_dict()) == s


# ---- on disk --------------------------------------------------------------------------------
class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs (no except/finally catches it here)."""


def _bundle(tmp: Path, version: str, body: str = "print('hi')\n") -> Path:
    src = tmp / f"src-{version}"
    (src / "firmware").mkdir(parents=True, exist_ok=True)
    (src / "firmware" / "app.py").write_text(body + f"# {version}\n")
    out = tmp / f"{version}.vbundle"
    build(out, name="vigil", version=version, kind="app", trees={"app": src})
    return out


def _lifecycle(root: Path, bundle: Path, on_step, fail: bool) -> None:
    fs = SlotFS(root, on_step)
    state = fs.load()
    assert state is not None
    state = stage(fs, state, bundle)
    state, _ = fs.apply(state, Switch(T0, uplink_ok=False, deadline_s=600))
    state, _ = fs.boot(T0 + timedelta(seconds=1))  # the service starts on the new slot
    state, _ = fs.apply(state, HealthFailed("gate") if fail else HealthPassed())


def _check_valid(root: Path) -> SlotState:
    fs = SlotFS(root)
    state, _ = fs.boot(T0 + timedelta(seconds=2))
    current = fs.link_target("current")
    assert current == state.active
    assert fs.is_complete(current), f"current points at incomplete slot {current}"
    assert fs.link_target("committed") == state.committed and fs.is_complete(state.committed)
    assert state.running_version in ("1.0.0", "1.1.0")
    app = (root / "current" / "app" / "firmware" / "app.py")
    if state.running_version == "1.1.0":
        assert app.read_text().endswith("# 1.1.0\n")
    assert not list(root.glob(".*.tmp")) and not list(root.glob(".*.new"))
    return state


@pytest.mark.parametrize("fail", [False, True], ids=["commit", "rollback"])
def test_kill_at_every_step_of_staging_and_switching_leaves_a_valid_slot(tmp_path, fail):
    bundle = _bundle(tmp_path, "1.1.0")
    steps: list[str] = []
    probe = tmp_path / "probe"
    SlotFS(probe).init("1.0.0")
    _lifecycle(probe, bundle, steps.append, fail)
    assert len(steps) >= 8, steps
    outcomes = set()
    for k in range(len(steps)):
        root = tmp_path / f"k{k}"
        SlotFS(root).init("1.0.0")
        def killer(name: str, k: int = k, count: list[int] = [0]) -> None:  # noqa: B006
            if count[0] == k:
                raise Killed(name)
            count[0] += 1

        with pytest.raises(Killed):
            _lifecycle(root, bundle, killer, fail)
        state = _check_valid(root)
        outcomes.add((state.phase, state.running_version))
        # and the unit carries on: a second run from wherever it stopped works
        if state.phase is Phase.IDLE and state.running_version == "1.0.0":
            SlotFS(root).apply(state, StageStart("1.1.0"))
    assert (Phase.TRIAL, "1.1.0") in outcomes and (Phase.IDLE, "1.0.0") in outcomes


def test_staging_leaves_the_running_slot_untouched_and_refuses_bad_bundles(tmp_path):
    root = tmp_path / "ota"
    fs = SlotFS(root)
    state = fs.init("1.0.0")
    marker = fs.slot_dir("a") / "app"
    marker.mkdir()
    (marker / "keep").write_text("running")
    before = sorted(p.relative_to(fs.slot_dir("a")) for p in fs.slot_dir("a").rglob("*"))
    bad = tmp_path / "bad.vbundle"
    data = _bundle(tmp_path, "1.1.0").read_bytes()
    bad.write_bytes(data[: len(data) - 40])
    with pytest.raises(BundleRefused):
        stage(fs, state, bad)
    state = fs.load()
    assert state is not None and state.phase is Phase.IDLE and "failed" in state.last
    assert not fs.is_complete("b")
    after = sorted(p.relative_to(fs.slot_dir("a")) for p in fs.slot_dir("a").rglob("*"))
    assert before == after and (marker / "keep").read_text() == "running"
    assert fs.link_target("current") == "a"


def test_model_bundle_is_checked_before_it_goes_live(tmp_path):
    root = tmp_path / "ota"
    fs = SlotFS(root)
    app = tmp_path / "factory"
    (app / "inference" / "models").mkdir(parents=True)
    (app / "inference" / "models" / "ocr.tflite").write_bytes(b"old")
    state = fs.init("1.0.0", adopt=app)
    models = tmp_path / "models"
    models.mkdir()
    (models / "ocr.tflite").write_bytes(b"new")
    mb = tmp_path / "m.vbundle"
    build(mb, name="vigil-models", version="1.0.1", kind="model", trees={"models": models})
    seen: list[Path] = []

    def reject(d: Path) -> None:
        seen.append(d)
        raise ValueError("manifest says another size")

    with pytest.raises(BundleRefused, match="another size"):
        stage(fs, state, mb, check_models=reject)
    state = fs.load()
    assert state is not None
    state = stage(fs, state, mb, check_models=seen.append)
    slot_models = fs.slot_dir("b") / "app" / "inference" / "models"
    assert (slot_models / "ocr.tflite").read_bytes() == b"new"
    assert (app / "inference" / "models" / "ocr.tflite").read_bytes() == b"old"
    assert not os.path.islink(fs.slot_dir("b") / "app")
    assert state.phase is Phase.STAGED and state.version_b == "1.0.1"
    assert dataclasses.replace(state).version_a == "1.0.0"
