"""An installer's offline update: `vigil ota publish --copy-to STICK` on the vendor's side,
`vigil ota install-usb STICK` on the unit (through the real `vigil` command line and the unit's
config), verified exactly as online: a tampered stick, a stick from someone else's keys and a
downgrade are refused with nothing changed; the running daemon's worker restarts into the
version an installer switched to."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from drivers.clock import SystemClock
from firmware.cli.main import main as vigil
from ota.events import EventLog
from ota.slotfs import SlotFS
from ota.slots import Phase
from ota.worker import HealthSample, OtaSettings, OtaWorker


def _vendor(tmp: Path, name: str, version: str, *, copy_to: Path) -> Path:
    keys, repo, src = tmp / f"{name}-keys", tmp / f"{name}-repo", tmp / f"{name}-src-{version}"
    if not keys.exists():
        assert vigil(["ota", "keygen", str(keys)]) == 0
    (src / "firmware").mkdir(parents=True)
    (src / "firmware" / "v.py").write_text(f"V = {version!r}\n")
    bundle = tmp / f"{name}-{version}.vbundle"
    assert vigil(["ota", "build", str(bundle), "--version", version, "--tree", str(src)]) == 0
    assert vigil(["ota", "sign", str(repo), str(bundle), "--keys", str(keys),
                  "--rollout-percent", "0", "--window-utc", "00:00-00:01"]) == 0
    assert vigil(["ota", "publish", str(repo), "--keys", str(keys), "--timestamp-hours", "168",
                  "--copy-to", str(copy_to)]) == 0
    return keys / "1.root.json"


class Unit:
    def __init__(self, tmp: Path, trusted_root: Path) -> None:
        self.root = tmp / "unit-ota"
        self.fs = SlotFS(self.root)
        self.fs.init("1.0.0")
        self.config = tmp / "vigil.toml"
        # The unit's online repository is unreachable: the stick is all there is.
        self.config.write_text(f"""
[unit]
camera_id = "cam-usb-1"
state_dir = "{tmp / 'state'}"
site_latitude = 45.0
site_longitude = -122.0

[ota]
enabled = true
repository = "https://127.0.0.1:9/unreachable"
trusted_root = "{trusted_root}"
root_dir = "{self.root}"
""")

    def install(self, stick: Path) -> int:
        return vigil(["ota", "install-usb", str(stick), "--config", str(self.config)])

    def untouched(self) -> tuple[bytes, list[str], str | None]:
        return ((self.root / "state.json").read_bytes(),
                sorted(p.name for p in self.fs.slot_dir("b").iterdir()),
                self.fs.link_target("current"))


@pytest.fixture
def vendor_stick(tmp_path: Path) -> tuple[Path, Path]:
    stick = tmp_path / "stick"
    root_json = _vendor(tmp_path, "vendor", "1.1.0", copy_to=stick)
    return root_json, stick


def test_a_stick_installs_like_online_and_puts_the_version_on_trial(vendor_stick, tmp_path,
                                                                    capsys):
    root_json, stick = vendor_stick
    assert sorted(p.name for p in stick.iterdir()) == ["metadata", "targets"]
    unit = Unit(tmp_path, root_json)
    capsys.readouterr()
    # the signed rollout share is 0 % and the window a minute at midnight: an installer at the
    # unit is not scheduled, but every trust check applies
    assert unit.install(stick) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["step"] == "trial" and out["version"] == "1.1.0"
    state = unit.fs.load()
    assert state is not None and state.phase is Phase.TRIAL and state.active == "b"
    assert state.committed == "a" and unit.fs.link_target("current") == "b"
    assert (unit.fs.slot_dir("b") / "app" / "firmware" / "v.py").read_text() == "V = '1.1.0'\n"
    journal = EventLog(unit.root).load()
    assert [e.step for e in journal] == [
        "downloading", "verified", "staged", "trial"]  # the daemon reports these upstream
    assert not any(e.audited for e in journal)  # and audits them when its worker starts
    assert unit.install(stick) == 1  # on trial now: nothing more until it is decided
    assert "phase trial" in capsys.readouterr().err


def _tamper_bundle(stick: Path) -> None:
    target = max((stick / "targets" / "stable").glob("*app.vbundle"))
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))


def _tamper_metadata(stick: Path) -> None:
    path = max((stick / "metadata").glob("*.targets.json"))
    text = path.read_text().replace('"rollout_percent":0', '"rollout_percent":1')
    path.write_text(text.replace('"rollout_percent": 0', '"rollout_percent": 1'))


def _replace_timestamp(stick: Path) -> None:
    path = stick / "metadata" / "timestamp.json"
    doc = json.loads(path.read_text())
    doc["signed"]["version"] += 1  # a newer timestamp nobody signed
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("tamper,why", [(_tamper_bundle, "refused"),
                                        (_tamper_metadata, "refused"),
                                        (_replace_timestamp, "refused")])
def test_a_tampered_stick_is_refused_with_nothing_changed(vendor_stick, tmp_path, capsys,
                                                          tamper, why):
    root_json, stick = vendor_stick
    tamper(stick)
    unit = Unit(tmp_path, root_json)
    before = unit.untouched()
    assert unit.install(stick) == 1
    assert why in capsys.readouterr().err
    assert unit.untouched() == before


def test_a_stick_signed_by_other_keys_and_a_downgrade_are_refused(vendor_stick, tmp_path,
                                                                  capsys):
    root_json, _stick = vendor_stick
    other = tmp_path / "other-stick"
    _vendor(tmp_path, "impostor", "9.0.0", copy_to=other)
    unit = Unit(tmp_path, root_json)
    before = unit.untouched()
    assert unit.install(other) == 1
    assert "refused" in capsys.readouterr().err and unit.untouched() == before
    old = tmp_path / "old-stick"
    _vendor(tmp_path, "vendor", "0.9.0", copy_to=old)  # genuinely signed, but older
    assert unit.install(old) == 1
    assert "downgrade" in capsys.readouterr().err and unit.untouched() == before


def test_the_running_daemon_restarts_into_a_version_an_installer_switched_to(vendor_stick,
                                                                             tmp_path):
    root_json, stick = vendor_stick
    unit = Unit(tmp_path, root_json)
    restarts: list[str] = []
    empty = tmp_path / "no-repo"
    empty.mkdir()
    settings = OtaSettings(enabled=True, repository=str(empty), trusted_root=str(root_json))
    running = OtaWorker(settings, unit.root, "cam-usb-1", SystemClock(),
                        health=lambda: HealthSample(True, 10.0, 1, None),
                        request_restart=restarts.append, audit=lambda *_: None,
                        running_version="1.0.0")
    stop = threading.Event()
    t = threading.Thread(target=running.run, args=(stop,), daemon=True)
    t.start()
    try:
        time.sleep(0.5)
        assert restarts == []
        assert unit.install(stick) == 0
        t0 = time.monotonic()
        while not restarts and time.monotonic() - t0 < 10:
            time.sleep(0.1)
        assert restarts == ["switched to 1.1.0 by an installer"]
    finally:
        stop.set()
        t.join(5)
