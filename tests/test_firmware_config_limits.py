"""Pathological config files: bounded parsing, finite numbers, no NUL, and a SIGHUP with any of
them keeps the running daemon and its config (reliability items 3 and 4)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from drivers.clock import FakeClock
from drivers.config_keys import Key, out_of_range, setting
from firmware import config
from firmware.app.daemon import Components, Daemon
from firmware.app.notify import Notifier
from firmware.errors import ConfigError
from storage.settings import StoreSettings
from tests.kit import open_store

FLOAT_KEYS = [(s, k) for s, sec in config._sections().items() for k, key in sec.keys.items()
              if key.type is float or (isinstance(key.type, tuple) and float in key.type)]
SITE = "[unit]\nsite_latitude = 45.0\nsite_longitude = -122.5\n"
STR_KEYS = [(s, k) for s, sec in config._sections().items() for k, key in sec.keys.items()
            if key.type is str]


def _load(tmp_path: Path, text: str | bytes) -> config.Settings:
    path = tmp_path / "vigil.toml"
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    return config.load(path)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "+nan"])
@pytest.mark.parametrize(("section", "key"), FLOAT_KEYS)
def test_every_float_key_refuses_nan_and_infinity(tmp_path, section, key, value):
    with pytest.raises(ConfigError, match=rf"\[{section}\] {key}: must be a finite number"):
        _load(tmp_path, f"[{section}]\n{key} = {value}\n")


def test_float_keys_are_found():
    assert ("watchdog", "stall_s") in FLOAT_KEYS and ("camera", "fps") in FLOAT_KEYS


@pytest.mark.parametrize(("section", "key"), STR_KEYS)
def test_every_string_key_refuses_nul(tmp_path, section, key):
    with pytest.raises(ConfigError, match=rf"\[{section}\] {key}: must not contain a NUL"):
        _load(tmp_path, f'[{section}]\n{key} = "a\\u0000b"\n')


def test_nul_in_a_list_of_names_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"\[hotlists\] names: must not contain a NUL"):
        _load(tmp_path, '[hotlists]\nnames = ["ok", "a\\u0000b"]\n')


def test_key_rule_is_shared_with_directly_built_settings():
    assert Key(float, 1.0, min=0.0, max=2.0).problem(float("nan"))
    assert Key(float, 1.0, min=0.0, max=2.0).problem(1.0) is None
    with pytest.raises(ValueError, match="finite"):
        setting(1.0, max=float("inf"))
    settings = StoreSettings()
    object.__setattr__(settings, "retention_days", float("nan"))
    assert any("finite" in p for p in out_of_range(settings))


@pytest.mark.parametrize("depth", [33, 300, 5000, 100_000])
def test_deep_nesting_is_a_config_error_not_a_recursion_error(tmp_path, depth):
    text = "[hotlists]\nnames = " + "[" * depth + "]" * depth + "\n"
    with pytest.raises(ConfigError, match=r"nested deeper than 32 levels \(line 2\)"):
        _load(tmp_path, text)
    inline = "[hotlists]\nnames = " + "{a = " * depth + "1" + "}" * depth + "\n"
    with pytest.raises(ConfigError, match="nested deeper"):
        _load(tmp_path, inline)


def test_brackets_in_strings_and_comments_do_not_count(tmp_path):
    deep = "[" * 100
    s = _load(tmp_path, f"# {deep}\n{SITE}site_name = \"{deep}\"\ncamera_id = '{deep}'\n"
              f"[hotlists]\nnames = [] # {deep}\n")
    assert s.unit.site_name == deep


def test_nesting_within_the_limit_reaches_the_validator(tmp_path):
    text = "[hotlists]\nnames = " + "[" * 32 + "]" * 32 + "\n"
    with pytest.raises(ConfigError, match="names"):
        _load(tmp_path, text)


def test_huge_file_and_huge_integer_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="larger than the"):
        _load(tmp_path, b"# " + b"x" * config.MAX_CONFIG_BYTES + b"\n")
    with pytest.raises(ConfigError, match="cannot be read"):
        _load(tmp_path, "[inference]\nthreads = " + "1" * 5000 + "\n")


def test_nul_in_the_config_path_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        config.load(tmp_path / "a\0b.toml")


def test_config_check_reports_deep_nesting_without_a_traceback(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    r = subprocess.run([sys.executable, "-m", "firmware.cli", "config", "check", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == config.EX_CONFIG
    assert "nested deeper than 32" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("text", [
    "x = " + "[" * 5000 + "]" * 5000 + "\n",
    "[watchdog]\nstall_s = nan\n",
    "[unit]\nstate_dir = \"a\\u0000b\"\n",
    "[inference]\nthreads = " + "9" * 5000 + "\n",
])
def test_sighup_with_a_pathological_file_keeps_the_running_config(tmp_path, text):
    path = tmp_path / "vigil.toml"
    path.write_text(SITE)
    settings = config.load(path)
    with open_store(tmp_path / "s.db") as store:
        daemon = Daemon(Components(settings=settings, clock=FakeClock(), camera=None,
                                   engine=None, store=store), Notifier(address=""))
        path.write_text(text)
        daemon.reload()
        assert daemon.settings is settings
        rejected = [e for e in store.audit_entries() if e.action == "config.reload"]
        assert rejected and rejected[-1].result == "rejected"
