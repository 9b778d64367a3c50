"""Config validation: every bad file is refused with a message naming the file and the key."""

import subprocess
import sys

import pytest

from firmware import config
from firmware.errors import ConfigError

BAD = [
    # (toml text, expected key in message, fragment of the reason)
    ("[unit]\ncamera_idd = 'x'\n", "camera_idd", "unknown key"),
    ("[camra]\n", "[camra]", "unknown section"),
    ("[inference]\nthreads = 0\n", "threads", "between 1 and 8"),
    ("[inference]\nthreads = 99\n", "threads", "between 1 and 8"),
    ("[inference]\nthreads = true\n", "threads", "expected integer"),
    ("[inference]\nthreads = 1.5\n", "threads", "expected integer"),
    ("[inference]\nthreads = '2'\n", "threads", "expected integer"),
    ("[inference]\ncountry = 'mars'\n", "country", "must be one of"),
    ("[inference]\nmin_read_confidence = 1.5\n", "min_read_confidence", "between"),
    ("[inference]\nmotion_gate = 'yes'\n", "motion_gate", "expected boolean"),
    ("[unit]\ncamera_id = ''\n", "camera_id", "must not be empty"),
    ("[unit]\nsite_latitude = 91\nsite_longitude = 0\n", "site_latitude", "between"),
    ("[unit]\nsite_latitude = 45.0\n", "[unit]", "given together"),
    ("[supervisor]\nbackoff_initial_s = 10.0\nbackoff_max_s = 1.0\n", "[supervisor]",
     "backoff_max_s"),
    ("[logging]\nlevel = 'loud'\n", "level", "must be one of"),
    ("[inference]\nzone_width = 1280\n", "[inference]", "zone_width and zone_height"),
    ("[inference]\nzone_width = 32\nzone_height = 32\n", "[inference]", "at least 64"),
    ("[inference]\nzone_x = 10\n", "[inference]", "zone_x and zone_y need"),
    ("[inference]\nzone_x = 3000\nzone_width = 1280\nzone_height = 720\n"
     "[camera]\nwidth = 3840\nheight = 2160\n", "zone_x + zone_width", "[camera] width"),
    ("unit = 3\n", "[unit]", "must be a table"),
    ("[unit\ncamera_id = 'x'\n", "vigil.toml", "TOML syntax error"),
    ("[unit]\ncamera_id = 'x'\ncamera_id = 'y'\n", "vigil.toml", "TOML syntax error"),
]


@pytest.mark.parametrize(("text", "key", "reason"), BAD)
def test_bad_config_names_file_and_key(tmp_path, text, key, reason):
    path = tmp_path / "vigil.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    msg = str(err.value)
    assert str(path) in msg
    assert key in msg
    assert reason in msg


def test_not_utf8_and_missing_file(tmp_path):
    bad = tmp_path / "bin.toml"
    bad.write_bytes(b"\xff\xfe[unit]")
    with pytest.raises(ConfigError, match="not UTF-8"):
        config.load(bad)
    with pytest.raises(ConfigError, match="cannot read config"):
        config.load(tmp_path / "absent.toml")


def test_good_config_is_typed_and_frozen(tmp_path):
    path = tmp_path / "vigil.toml"
    path.write_text("[unit]\ncamera_id = 'pole-7'\nsite_latitude = 45\nsite_longitude = -122.5\n"
                    "[inference]\nthreads = 3\n")
    s = config.load(path)
    assert s.unit.camera_id == "pole-7"
    assert s.unit.site_latitude == 45.0 and isinstance(s.unit.site_latitude, float)
    assert s.inference.threads == 3
    with pytest.raises(AttributeError):
        s.unit.camera_id = "x"  # frozen


def test_simulation_defaults_replay_bundled_footage_and_print_reads():
    sim = config.simulation_defaults()
    assert sim.camera.backend == "replay"
    assert sim.camera.source.endswith("footage.avi")
    assert sim.logging.reads_stdout
    # A deployed unit's file that says nothing about reads never prints plates to the journal.
    deployed = config.validate({"unit": {"site_latitude": 1.0, "site_longitude": 2.0}}, "x")
    assert not deployed.logging.reads_stdout
    assert deployed.illuminator.pin_factory == "lgpio"  # real pins unless told otherwise


def test_site_mode_needs_a_site():
    with pytest.raises(ConfigError, match="site_latitude"):
        config.validate({}, "x.toml")


def test_redacted_show_is_plain_data():
    out = config.redacted(config.simulation_defaults())
    assert out["unit"]["camera_id"] == "sim-1"


def test_cli_check_exits_78_before_starting(tmp_path):
    path = tmp_path / "vigil.toml"
    path.write_text("[inference]\nthreads = 0\n")
    for argv in (["config", "check", str(path)], ["run", "--config", str(path)]):
        proc = subprocess.run([sys.executable, "-m", "firmware.cli", *argv],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 78, proc.stderr
        assert "threads" in proc.stderr and str(path) in proc.stderr


def test_configuration_doc_is_generated_from_the_schema():
    from pathlib import Path

    from firmware.config.docs import render

    doc = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
    assert doc.read_text() == render(), "regenerate: python -m firmware.config.docs > " + str(doc)


def test_every_default_is_declared_once() -> None:
    """The schema's default of every key equals the settings class's field default."""
    import dataclasses

    from firmware.config.sections import SECTIONS

    drift = []
    for sname, section in SECTIONS.items():
        cls = section.settings_class
        assert cls is not None, f"[{sname}] names no settings class"
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for kname, key in section.keys.items():
            assert kname in fields, f"[{sname}] {kname} is not a field of {cls.__name__}"
            want = key.to_value(key.default)
            if fields[kname].default != want:
                drift.append(f"[{sname}] {kname}: schema {want!r}, "
                             f"{cls.__name__} {fields[kname].default!r}")
    assert not drift, "defaults drifted:\n" + "\n".join(drift)


def test_settings_are_typed_per_section() -> None:
    """Every schema section is a typed field of Settings; a misspelt section is an error."""
    import dataclasses

    from firmware.config.sections import SECTIONS

    assert [f.name for f in dataclasses.fields(config.Settings)][1:] == list(SECTIONS)
    sim = config.simulation_defaults()
    for sname, section in SECTIONS.items():
        assert isinstance(getattr(sim, sname), section.settings_class)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        sim.camra  # type: ignore[attr-defined]  # noqa: B018
