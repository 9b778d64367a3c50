"""Policy bounds in the config validator (finding 6): retention 1-30 days unless a signed agency
policy file beside the config allows more, ``reads_stdout`` only on the simulation rig; and the
audit of config changes and provisioning steps made while the daemon was stopped."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drivers.clock import FakeClock
from firmware import audit_journal, config, provision
from firmware.config.policy import POLICY_FILE_NAME, sign_policy
from firmware.errors import ConfigError
from tests.kit import make_read, open_store
from tests.test_provision_flow import INSTALLER_HASH, request

NOW = datetime(2026, 12, 1, tzinfo=UTC)
AGENCY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def _agency_b64(key: Ed25519PrivateKey = AGENCY) -> str:
    import base64

    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def _config(tmp_path: Path, retention: int, *, backend: str = "replay",
            stdout: bool = False) -> Path:
    src = config.simulation_defaults().camera.source
    p = tmp_path / "vigil.toml"
    p.write_text(f"""
[unit]
camera_id = "cam-7"
site_latitude = 45.0
site_longitude = -122.0
[camera]
backend = "{backend}"
source = "{src}"
[store]
retention_days = {retention}
[logging]
reads_stdout = {"true" if stdout else "false"}
[hotlists]
agency_public_key = "{_agency_b64()}"
""")
    return p


@pytest.mark.parametrize("days", [31, 60, 90])
def test_retention_above_30_days_is_refused_without_a_signed_policy(
    tmp_path: Path, days: int,
) -> None:
    with pytest.raises(ConfigError, match="retention_days"):
        config.load(_config(tmp_path, days))
    assert config.load(_config(tmp_path, 30)).store.retention_days == 30


def test_a_signed_agency_policy_beside_the_config_allows_longer_retention(
    tmp_path: Path,
) -> None:
    cfg = _config(tmp_path, 60)
    (tmp_path / POLICY_FILE_NAME).write_bytes(sign_policy(AGENCY, "cam-7", 60, NOW))
    assert config.load(cfg).store.retention_days == 60
    with pytest.raises(ConfigError, match="allows 60"):
        config.load(_config(tmp_path, 61))


@pytest.mark.parametrize("case", ["other_key", "other_unit", "edited"])
def test_a_policy_not_signed_by_the_agency_for_this_unit_is_refused(
    tmp_path: Path, case: str,
) -> None:
    cfg = _config(tmp_path, 60)
    key = Ed25519PrivateKey.generate() if case == "other_key" else AGENCY
    raw = sign_policy(key, "cam-9" if case == "other_unit" else "cam-7", 60, NOW)
    if case == "edited":
        raw = raw.replace(b'"max_retention_days": 60', b'"max_retention_days": 90')
    (tmp_path / POLICY_FILE_NAME).write_bytes(raw)
    with pytest.raises(ConfigError, match=POLICY_FILE_NAME):
        config.load(cfg)


def test_reads_stdout_is_refused_outside_the_simulation_rig(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="reads_stdout"):
        config.load(_config(tmp_path, 30, backend="v4l2", stdout=True))
    assert config.load(_config(tmp_path, 30, backend="v4l2")).logging.reads_stdout is False
    assert config.load(_config(tmp_path, 30, stdout=True)).logging.reads_stdout is True


def test_a_config_edited_while_stopped_is_audited_at_start(tmp_path: Path) -> None:
    cfg = _config(tmp_path, 30)
    with open_store(tmp_path / "s.db") as s:
        assert audit_journal.record_config_at_start(s, str(cfg)) == "config.first_seen"
        assert audit_journal.record_config_at_start(s, str(cfg)) is None  # unchanged
        cfg.write_text(cfg.read_text().replace("retention_days = 30", "retention_days = 7"))
        assert audit_journal.record_config_at_start(s, str(cfg)) == "config.changed_while_stopped"
        entry = next(e for e in s.audit_entries() if e.action == "config.changed_while_stopped")
        assert entry.detail["config_sha256"] == audit_journal.config_sha256(str(cfg))
        assert entry.detail["previous_sha256"] and s.verify_audit().ok


def test_provisioning_and_kek_rotation_reach_the_audit_chain(tmp_path: Path) -> None:
    state = tmp_path / "state"
    provision.provision(request(tmp_path), INSTALLER_HASH)
    provision.provision(request(tmp_path, rotate_kek=True, rotate_tls_key=True), INSTALLER_HASH)
    assert (state / audit_journal.JOURNAL_NAME).stat().st_mode & 0o077 == 0
    with open_store(state / "vigil.db", clock=FakeClock()) as s:
        s.put_read(make_read(random.Random(1)))
        assert audit_journal.import_pending(s, state) == 6
        steps = [(e.action, e.result) for e in s.audit_entries() if e.role == "installer"]
        assert not (state / audit_journal.JOURNAL_NAME).exists()
        assert s.verify_audit().ok
    assert steps == [("provision.config", "written"), ("provision.kek", "created"),
                     ("provision.tls_key", "created"), ("provision.config", "replaced"),
                     ("provision.kek", "rotated"), ("provision.tls_key", "rotated")]
