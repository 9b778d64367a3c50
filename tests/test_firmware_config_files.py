"""Files a config names are checked by `vigil config check` and at start-up alike: a file that
cannot work is exit 78 (EX_CONFIG, no systemd retries), with the key named (item 8)."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from firmware import config
from firmware.errors import ConfigError

SITE = "[unit]\nsite_latitude = 45.0\nsite_longitude = -122.5\n"


def _write(tmp_path: Path, body: str, state: str | None = None) -> Path:
    state_dir = state if state is not None else str(tmp_path / "state")
    path = tmp_path / "vigil.toml"
    path.write_text(SITE + f'state_dir = "{state_dir}"\n' + body)
    return path


def _cases(tmp_path: Path) -> dict[str, tuple[str, str | None, str]]:
    """name -> (toml body, state_dir or None, key expected in the message)."""
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "kekdir").mkdir()
    bad_key = base64.b64encode(b"short").decode()
    return {
        "missing certificates": ('[uplink]\nendpoint = "https://agency.example"\n'
                                 f'ca_file = "{tmp_path}/ca.pem"\ncert_file = "{tmp_path}/c.pem"\n'
                                 f'key_file = "{tmp_path}/k.pem"\n', None, "[uplink] ca_file"),
        "missing replay source": (f'[camera]\nbackend = "replay"\nsource = "{tmp_path}/no.avi"\n',
                                  None, "[camera] source"),
        "kek_file is a directory": (f'[keys]\nkek_file = "{tmp_path}/kekdir"\n', None,
                                    "[keys] kek_file"),
        "bad agency key": (f'[hotlists]\nagency_public_key = "{bad_key}"\n', None,
                           "[hotlists] agency_public_key"),
        "state dir under a file": ("", f"{tmp_path}/a-file/state", "[unit] state_dir"),
        "model_dir missing": (f'[inference]\nmodel_dir = "{tmp_path}/models"\n', None,
                              "[inference] model_dir"),
        "ota root missing": (f'[ota]\nenabled = true\nrepository = "https://u.example"\n'
                             f'trusted_root = "{tmp_path}/root.json"\n', None,
                             "[ota] trusted_root"),
    }


CASES = ["missing certificates", "missing replay source", "kek_file is a directory",
         "bad agency key", "state dir under a file", "model_dir missing", "ota root missing"]


@pytest.mark.parametrize("case", CASES)
def test_check_files_names_the_key(tmp_path, case):
    body, state, key = _cases(tmp_path)[case]
    settings = config.load(_write(tmp_path, body, state))  # the file itself is valid TOML
    with pytest.raises(ConfigError) as err:
        config.check_files(settings)
    assert key in str(err.value) and str(tmp_path / "vigil.toml") in str(err.value)


def test_a_good_file_and_the_simulation_rig_pass(tmp_path):
    config.check_files(config.load(_write(tmp_path, "")))
    config.check_files(config.simulation_defaults())


def _vigil(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "firmware.cli", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("case", CASES)
def test_config_check_exits_78(tmp_path, case):
    body, state, key = _cases(tmp_path)[case]
    r = _vigil("config", "check", str(_write(tmp_path, body, state)))
    assert r.returncode == config.EX_CONFIG, r.stderr
    assert key in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("case", ["missing certificates", "state dir under a file"])
def test_start_up_exits_78_before_touching_anything(tmp_path, case):
    body, state, key = _cases(tmp_path)[case]
    r = _vigil("run", "--config", str(_write(tmp_path, body, state)))
    assert r.returncode == config.EX_CONFIG, r.stderr
    assert key in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "state").exists()  # no store opened, no key created


def test_sighup_with_a_missing_certificate_keeps_the_running_config(tmp_path):
    from drivers.clock import FakeClock
    from firmware.app.daemon import Components, Daemon
    from firmware.app.notify import Notifier
    from tests.kit import open_store

    path = _write(tmp_path, "")
    settings = config.load(path)
    with open_store(tmp_path / "s.db") as store:
        daemon = Daemon(Components(settings=settings, clock=FakeClock(), camera=None,
                                   engine=None, store=store), Notifier(address=""))
        path = _write(tmp_path, _cases(tmp_path)["missing certificates"][0])
        daemon.reload()
        assert daemon.settings is settings
