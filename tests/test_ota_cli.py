"""The vendor tools end to end: keygen -> build -> sign -> publish -> a unit checks and fetches."""

from __future__ import annotations

import json

from ota.bundle import unpack
from ota.cli import main
from ota.client import UpdateClient
from ota.fetch import DirTransport


def test_vendor_tools_make_a_repository_a_unit_accepts(tmp_path, capsys):
    keys, repo, src = tmp_path / "keys", tmp_path / "repo", tmp_path / "src"
    (src / "firmware").mkdir(parents=True)
    (src / "firmware" / "x.py").write_text("X = 2\n")
    assert main(["ota", "keygen", str(keys), "--root-keys", "3", "--root-threshold", "2"]) == 0
    assert sorted(p.name for p in keys.glob("*.pem")) == [
        "root-1.pem", "root-2.pem", "root-3.pem", "snapshot.pem", "targets.pem", "timestamp.pem"]
    assert oct(keys.joinpath("targets.pem").stat().st_mode & 0o777) == "0o600"
    bundle = tmp_path / "vigil-1.1.0.vbundle"
    assert main(["ota", "build", str(bundle), "--version", "1.1.0", "--tree", str(src)]) == 0
    assert main(["ota", "sign", str(repo), str(bundle), "--keys", str(keys),
                 "--rollout-percent", "25", "--window-utc", "01:00-05:00"]) == 0
    assert main(["ota", "publish", str(repo), "--keys", str(keys)]) == 0
    capsys.readouterr()
    assert main(["ota", "inspect", str(repo)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["targets"]["stable/app.vbundle"]["vigil"]["rollout_percent"] == 25
    assert shown["root"]["roles"]["root"]["threshold"] == 2
    assert main(["ota", "inspect", str(bundle)]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == "1.1.0"

    client = UpdateClient(str(repo), tmp_path / "unit", (keys / "1.root.json").read_bytes(),
                          DirTransport())
    offer = client.check(["stable/app.vbundle"])["stable/app.vbundle"]
    assert offer.rollout_percent == 25 and offer.window_utc is not None
    got = client.fetch(offer, tmp_path / "dl")
    unpack(got, tmp_path / "slot")
    assert (tmp_path / "slot" / "app" / "firmware" / "x.py").read_text() == "X = 2\n"


def test_keygen_refuses_to_overwrite_and_errors_exit_1(tmp_path, capsys):
    assert main(["ota", "keygen", str(tmp_path / "k")]) == 0
    assert main(["ota", "keygen", str(tmp_path / "k")]) == 1
    assert "refusing to overwrite" in capsys.readouterr().err


def test_unit_init_boot_state(tmp_path, capsys):
    root = tmp_path / "ota"
    assert main(["ota", "init", "--root", str(root), "--version", "1.0.0"]) == 0
    assert main(["ota", "boot", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert '"phase": "idle"' in out and (root / "current").is_symlink()
