"""Provisioning in tmp_path: files, modes, validation, refusal to clobber, certificate install."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import stat
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from drivers.clock import FakeClock
from firmware import config, provision
from firmware.cli import cmd_provision
from firmware.console.auth import hash_password, parse_hash, verify_password
from firmware.errors import ConfigError

#: At the default (OWASP) parameters: the config refuses a weaker console hash.
INSTALLER_HASH = hash_password("installer-pw")


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def request(tmp_path: Path, **kw: object) -> provision.ProvisionRequest:
    base: dict[str, object] = {"out": tmp_path / "etc" / "vigil.toml", "camera_id": "unit-7",
                                   "site": (45.5, -122.6), "camera_backend": "v4l2",
                                   "state_dir": tmp_path / "state"}
    base.update(kw)
    return provision.ProvisionRequest(**base)  # type: ignore[arg-type]


def test_fresh_unit(tmp_path: Path) -> None:
    r = provision.provision(request(tmp_path, console_password="installer-pw"), INSTALLER_HASH)
    cfg = tmp_path / "etc" / "vigil.toml"
    assert r.config_path == cfg and not r.config_replaced
    assert mode(cfg) == 0o640
    s = config.load(cfg)
    assert s.unit.camera_id == "unit-7" and s.unit.site_latitude == 45.5
    assert s.camera.backend == "v4l2"
    assert s.console.enabled
    assert verify_password("installer-pw", parse_hash(s.console.password_hash))
    state = tmp_path / "state"
    assert mode(state) == 0o700
    assert r.kek_created and r.kek_file == state / "kek.bin"
    assert mode(r.kek_file) == 0o600 and r.kek_file.stat().st_size == 32
    assert r.tls_key_created and mode(r.tls_key_file) == 0o600
    key = serialization.load_pem_private_key(r.tls_key_file.read_bytes(), password=None)
    csr = x509.load_pem_x509_csr(r.csr_pem.encode())
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "unit-7"
    assert csr.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
    assert r.csr_file.read_text() == r.csr_pem
    assert not r.cert_present
    assert sorted(p.name for p in cfg.parent.iterdir()) == ["vigil.toml"]  # no temp left
    assert "installer-pw" not in cfg.read_text()
    assert "PRIVATE" not in repr(r) and "installer-pw" not in repr(request(
        tmp_path, console_password="installer-pw"))


def test_rerun_keeps_keys_and_merges(tmp_path: Path) -> None:
    first = provision.provision(request(tmp_path, console_password="x"), INSTALLER_HASH)
    kek, tls_key = first.kek_file.read_bytes(), first.tls_key_file.read_bytes()
    again = provision.provision(provision.ProvisionRequest(out=first.config_path,
                                                           site=(10.0, 20.0)))
    assert again.config_replaced and not again.kek_created and not again.tls_key_created
    assert again.kek_file.read_bytes() == kek and again.tls_key_file.read_bytes() == tls_key
    s = config.load(first.config_path)
    assert (s.unit.site_latitude, s.unit.site_longitude) == (10.0, 20.0)
    assert s.unit.camera_id == "unit-7" and s.console.password_hash == INSTALLER_HASH
    assert s.unit.state_dir == str(tmp_path / "state")


def test_a_reading_zone_is_set_checked_and_cleared(tmp_path: Path) -> None:
    first = provision.provision(request(tmp_path))
    args = _parse(["provision", "--out", str(first.config_path), "--zone", "1280,720,1280,720",
                   "--no-input"])
    stderr = io.StringIO()
    assert cmd_provision.cmd_provision(args, io.StringIO(), io.StringIO(), stderr) == 78
    assert "zone_x + zone_width is beyond [camera] width" in stderr.getvalue()  # a 720p camera
    args = _parse(["provision", "--out", str(first.config_path), "--camera-size", "3840x2160",
                   "--zone", "1280,720,1280,720", "--no-input"])
    assert cmd_provision.cmd_provision(args, io.StringIO(), io.StringIO(), io.StringIO()) == 0
    s = config.load(first.config_path)
    inf = s.inference
    assert (inf.zone_x, inf.zone_y, inf.zone_width, inf.zone_height) == (1280, 720, 1280, 720)
    assert (s.camera.width, s.camera.height) == (3840, 2160)
    stderr = io.StringIO()
    bad = _parse(["provision", "--out", str(first.config_path), "--zone", "0,0,1280,0",
                  "--no-input"])
    assert cmd_provision.cmd_provision(bad, io.StringIO(), io.StringIO(), stderr) == 78
    assert "zone_width and zone_height" in stderr.getvalue()
    provision.provision(provision.ProvisionRequest(out=first.config_path, zone=(0, 0, 0, 0)))
    assert config.load(first.config_path).inference.zone_width == 0


def test_invalid_result_leaves_old_file_and_keys_untouched(tmp_path: Path) -> None:
    first = provision.provision(request(tmp_path))
    before = first.config_path.read_bytes()
    with pytest.raises(ConfigError, match=r"vigil\.toml: \[unit\] site_latitude"):
        provision.provision(provision.ProvisionRequest(out=first.config_path, site=(123.0, 0.0)))
    assert first.config_path.read_bytes() == before
    assert sorted(p.name for p in first.config_path.parent.iterdir()) == ["vigil.toml"]
    # Nothing is created when the first run's config would already be invalid.
    fresh = tmp_path / "other"
    with pytest.raises(ConfigError):
        provision.provision(request(fresh, site=(0.0, 999.0)))
    assert not (fresh / "state").exists() and not (fresh / "etc" / "vigil.toml").exists()


def test_unparseable_existing_config_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "vigil.toml"
    cfg.write_text("[unit\ncamera_id = ")
    with pytest.raises(ConfigError, match="move it aside"):
        provision.provision(request(tmp_path, out=cfg))
    assert cfg.read_text() == "[unit\ncamera_id = "


def test_exposed_kek_is_refused_and_config_not_replaced(tmp_path: Path) -> None:
    first = provision.provision(request(tmp_path))
    before = first.config_path.read_bytes()
    first.kek_file.chmod(0o644)
    with pytest.raises(provision.ProvisionError, match="0600"):
        provision.provision(provision.ProvisionRequest(out=first.config_path, camera_id="new"))
    assert first.config_path.read_bytes() == before


def _store(path: Path, kek: Path):  # type: ignore[no-untyped-def]
    from storage.keys import FileKeySource
    from tests.kit import open_store

    return open_store(path, FileKeySource(kek))


def test_rotate_kek_destroys_the_store_and_makes_a_new_key(tmp_path: Path) -> None:
    from tests.kit import make_read

    first = provision.provision(request(tmp_path))
    db = tmp_path / "state" / "vigil.db"
    with _store(db, first.kek_file) as st:
        st.put_read(make_read(plate="AB123CD"))
    old = first.kek_file.read_bytes()
    kept = provision.provision(provision.ProvisionRequest(out=first.config_path))
    assert kept.kek_file.read_bytes() == old and db.exists()

    r = provision.provision(provision.ProvisionRequest(out=first.config_path, rotate_kek=True))
    assert r.kek_rotated and r.kek_created and db in r.store_files_destroyed
    assert r.kek_file.read_bytes() != old and mode(r.kek_file) == 0o600
    assert not db.exists()
    with _store(db, r.kek_file) as st:  # the daemon starts on a fresh store with the new key
        assert st.stats()["stored_reads"] == 0


def test_rotate_kek_refused_while_the_daemon_answers(tmp_path: Path) -> None:
    from firmware.console.control import ControlServer

    first = provision.provision(request(tmp_path))
    sock = tmp_path / "state" / "control.sock"
    server = ControlServer(sock, {"ping": lambda _r: "pong"})
    server.open()
    stop = threading.Event()
    t = threading.Thread(target=server.run, args=(stop,), daemon=True)
    t.start()
    try:
        with pytest.raises(provision.DaemonRunning):
            provision.provision(provision.ProvisionRequest(out=first.config_path,
                                                           rotate_kek=True))
    finally:
        stop.set()
        t.join(5)
        server.close()
    assert first.kek_file.exists()


def test_rerun_keeps_the_operators_comments(tmp_path: Path) -> None:
    first = provision.provision(request(tmp_path))
    cfg = first.config_path
    text = cfg.read_text().replace("[camera]\n", "[camera]\n# the north pole, facing the bridge\n")
    cfg.write_text(text + "\n[tracker]\nmin_frames = 3  # two-frame passes were noise here\n")
    provision.provision(provision.ProvisionRequest(out=cfg, site_name="Bridge north"))
    again = cfg.read_text()
    assert "[camera]\n# the north pole, facing the bridge\n" in again
    assert "min_frames = 3  # two-frame passes were noise here" in again
    assert again.startswith("# Vigil unit configuration") and again.count("# Vigil unit") == 1
    s = config.load(cfg)
    assert s.unit.site_name == "Bridge north" and s.tracker.min_frames == 3


def test_toml_writer_round_trips_awkward_strings(tmp_path: Path) -> None:
    data: dict[str, dict[str, Any]] = {
        "unit": {"site_name": 'Quai "9"\\ \u00e9\t\n\x01 end', "camera_id": "a"},
        "store": {"search_roles": ["operator", "x\"y"], "retention_days": 7,
                  "max_db_mb": 12.5, "drop_unsent_reads_when_full": False},
    }
    text = provision.dumps_config(data, "header\nline two")
    assert tomllib.loads(text) == data
    assert text.startswith("# header\n# line two\n")


def test_uplink_section_points_at_the_provisioned_key(tmp_path: Path) -> None:
    r = provision.provision(request(tmp_path, uplink_endpoint="https://ingest.example:8443",
                                    ca_file=tmp_path / "ca.pem"))
    up = config.load(r.config_path).uplink
    assert up.endpoint == "https://ingest.example:8443" and up.device_id == "unit-7"
    assert Path(up.key_file) == r.tls_key_file and Path(up.cert_file) == r.cert_file
    assert Path(up.ca_file) == tmp_path / "ca.pem"


# ---------------------------------------------------------------------------------- certs


def _ca(name: str = "Agency CA") -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def _sign(csr_pem: str, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate,
          days: int = 365) -> bytes:
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca.subject)
            .public_key(csr.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=days)).sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def provisioned(tmp_path: Path) -> Iterator[provision.ProvisionResult]:
    yield provision.provision(request(tmp_path))


def test_install_signed_certificate(provisioned: provision.ProvisionResult) -> None:
    ca_key, ca = _ca()
    pem = _sign(provisioned.csr_pem, ca_key, ca)
    done = provision.install_certificate(provisioned.config_path, pem, FakeClock(),
                                         ca.public_bytes(serialization.Encoding.PEM))
    assert done.cert_file == provisioned.cert_file and done.subject == "CN=unit-7"
    assert x509.load_pem_x509_certificate(done.cert_file.read_bytes()).subject.rfc4514_string(
    ) == "CN=unit-7"
    assert done.ca_file is not None and done.ca_file.exists()


def test_certificates_that_do_not_fit_are_refused(provisioned: provision.ProvisionResult,
                                                  tmp_path: Path) -> None:
    ca_key, ca = _ca()
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_csr = (x509.CertificateSigningRequestBuilder()
                 .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unit-7")]))
                 .sign(other_key, hashes.SHA256()))
    wrong_key = _sign(other_csr.public_bytes(serialization.Encoding.PEM).decode(), ca_key, ca)
    cfg, clock = provisioned.config_path, FakeClock()
    with pytest.raises(provision.CertificateMismatch, match="different key"):
        provision.install_certificate(cfg, wrong_key, clock)
    expired = _sign(provisioned.csr_pem, ca_key, ca, days=-0)
    late = FakeClock(start=dt.datetime(2027, 6, 1, tzinfo=dt.UTC))
    with pytest.raises(provision.CertificateMismatch, match="not now"):
        provision.install_certificate(cfg, expired, late)
    _, other_ca = _ca("Someone else")
    good = _sign(provisioned.csr_pem, ca_key, ca)
    with pytest.raises(provision.CertificateMismatch, match="CA"):
        provision.install_certificate(cfg, good, clock,
                                      other_ca.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(provision.CertificateMismatch, match="not a PEM"):
        provision.install_certificate(cfg, b"junk", clock)
    assert not provisioned.cert_file.exists()


# ---------------------------------------------------------------------------------- CLI


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="vigil")
    sub = p.add_subparsers(dest="command", required=True)
    cmd_provision.register(sub)
    return p.parse_args(argv)


def test_cli_non_interactive(tmp_path: Path) -> None:
    out_cfg = tmp_path / "vigil.toml"
    args = _parse(["provision", "--out", str(out_cfg), "--camera-id", "unit-9", "--site",
                   "1.5,2.5", "--camera", "picamera2", "--state-dir", str(tmp_path / "s"),
                   "--console-password-stdin", "--csr-out", str(tmp_path / "usb" / "u9.csr")])
    stdout, stderr = io.StringIO(), io.StringIO()
    rc = cmd_provision.cmd_provision(args, io.StringIO("pw from stdin\n"), stdout, stderr)
    assert rc == 0, stderr.getvalue()
    assert stdout.getvalue().startswith("-----BEGIN CERTIFICATE REQUEST-----")
    assert "PRIVATE KEY" not in stdout.getvalue() + stderr.getvalue()
    assert "pw from stdin" not in stdout.getvalue() + stderr.getvalue()
    assert (tmp_path / "usb" / "u9.csr").read_text() == stdout.getvalue()
    s = config.load(out_cfg)
    assert verify_password("pw from stdin", parse_hash(s.console.password_hash))
    assert s.unit.site_longitude == 2.5


def test_cli_invalid_config_exits_78_and_changes_nothing(tmp_path: Path) -> None:
    out_cfg = tmp_path / "vigil.toml"
    out_cfg.write_text('[unit]\ncamera_id = "keep"\nstate_dir = "%s"\n' % (tmp_path / "s"))
    before = out_cfg.read_bytes()
    args = _parse(["provision", "--out", str(out_cfg), "--site", "91,0", "--no-input"])
    stderr = io.StringIO()
    assert cmd_provision.cmd_provision(args, io.StringIO(), io.StringIO(), stderr) == 78
    assert "site_latitude" in stderr.getvalue() and "nothing was changed" in stderr.getvalue()
    assert out_cfg.read_bytes() == before and not (tmp_path / "s").exists()


def test_console_user_names_the_installer_and_is_validated(tmp_path: Path) -> None:
    r = provision.provision(provision.ProvisionRequest(
        out=tmp_path / "vigil.toml", camera_id="unit-8", site=(45.0, -122.0),
        state_dir=tmp_path / "s", console_password="installer-pw", console_user="ines.m"),
        INSTALLER_HASH)
    s = config.load(r.config_path)
    assert s.console.user == "ines.m" and s.console.enabled
    with pytest.raises(config.ConfigError, match="user"):
        provision.provision(provision.ProvisionRequest(
            out=tmp_path / "vigil.toml", console_user="Not A Name"), INSTALLER_HASH)


def test_console_passwd_prints_a_verifying_hash() -> None:
    out, err = io.StringIO(), io.StringIO()
    args = _parse(["console-passwd"])
    assert cmd_provision.cmd_console_passwd(args, io.StringIO("s3cret pass 12\n"), out, err) == 0
    h = out.getvalue().strip()
    assert verify_password("s3cret pass 12", parse_hash(h)) and "s3cret" not in h
    assert parse_hash(h).params.meets_policy()
    assert cmd_provision.cmd_console_passwd(args, io.StringIO(""), io.StringIO(), err) == 1


@pytest.mark.parametrize("short", ["x", "eleven char"])
def test_console_passwd_refuses_short_passwords(short: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    args = _parse(["console-passwd"])
    assert cmd_provision.cmd_console_passwd(args, io.StringIO(short + "\n"), out, err) == 1
    assert out.getvalue() == "" and "at least 12 characters" in err.getvalue()


def test_install_cert_cli(provisioned: provision.ProvisionResult, tmp_path: Path) -> None:
    ca_key, ca = _ca()
    (tmp_path / "signed.pem").write_bytes(_sign(provisioned.csr_pem, ca_key, ca))
    args = _parse(["install-cert", "--config", str(provisioned.config_path), "--cert",
                   str(tmp_path / "signed.pem")])
    err = io.StringIO()
    assert cmd_provision.cmd_install_cert(args, err) == 0, err.getvalue()
    assert provisioned.cert_file.exists()
    assert os.access(provisioned.cert_file, os.R_OK)


class _TtyInput(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_interactive_prompts_for_what_no_flag_gave(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["short", "long enough pw", "long enough pw"])
    monkeypatch.setattr(cmd_provision.getpass, "getpass", lambda *_a, **_k: next(answers))
    out_cfg = tmp_path / "vigil.toml"
    args = _parse(["provision", "--out", str(out_cfg), "--state-dir", str(tmp_path / "s")])
    stdin = _TtyInput("unit-i\nnot a site\n12.5,7.25\nbogus\ngstreamer\n")
    err = io.StringIO()
    assert cmd_provision.cmd_provision(args, stdin, io.StringIO(), err) == 0, err.getvalue()
    assert "expected LAT,LON" in err.getvalue() and "at least 12" in err.getvalue()
    s = config.load(out_cfg)
    assert s.unit.camera_id == "unit-i" and s.unit.site_latitude == 12.5
    assert s.camera.backend == "gstreamer"
    assert verify_password("long enough pw", parse_hash(s.console.password_hash))
    assert "long enough pw" not in err.getvalue()
