"""The real daemon on the simulated rig, stopped and started again: a config edited while it was
stopped is audited at the next start, provisioning steps journaled meanwhile reach the chain, a
damaged wrapped day key does not stop it from starting and reading, and `vigil status` says
which key source holds the KEK (the file, or a TPM: swtpm here)."""

from __future__ import annotations

import sqlite3

from drivers.clock import SystemClock
from firmware import audit_journal
from hil.rig import SimulatedRig
from hil.test_daemon_lifecycle import _config
from storage.tpm import SEALED_PRIV, TCTI_ENV
from tests.kit.swtpm import software_tpm


def _run_once(tmp_path, text: str | None = None, reads: int = 1) -> dict:
    rig = SimulatedRig(tmp_path, text)
    try:
        rig.start()
        rig.wait_ready()
        rig.wait_for(lambda: len(rig.reads) >= reads, 60, f"{reads} reads")
        status = rig.control("status")
        rc, _ = rig.stop()
        assert rc == 0, "\n".join(rig.stderr_lines[-20:])
        return status
    finally:
        rig.close()
        (tmp_path / "notify.sock").unlink(missing_ok=True)


def test_restarts_audit_offline_changes_and_survive_a_damaged_day_key(tmp_path):
    status = _run_once(tmp_path, _config(tmp_path))
    assert status["store"]["key_source"].startswith("file:")
    cfg = tmp_path / "vigil.toml"
    cfg.write_text(cfg.read_text().replace('camera_id = "hil-1"', 'camera_id = "hil-3"'))
    audit_journal.note(tmp_path / "state", "provision.certificate", "installed",
                       {"subject": "CN=hil-3"}, SystemClock())
    db = next((tmp_path / "state").glob("*.db"))
    with sqlite3.connect(str(db), isolation_level=None) as c:
        day, wrapped = c.execute("SELECT day, wrapped FROM day_keys").fetchone()
        flipped = bytearray(wrapped)
        flipped[30] ^= 0x04
        c.execute("UPDATE day_keys SET wrapped=? WHERE day=?", (bytes(flipped), day))
    status = _run_once(tmp_path, None, reads=1)  # starts, and keeps reading
    assert status["store"]["damaged_day_keys"] == [day]
    assert status["store"]["set_aside_reads"] >= 1
    assert status["state"] == "degraded" and "store_day_key_damaged" in status["reasons"]
    rig = SimulatedRig(tmp_path)
    with rig.open_store() as store:
        actions = [e.action for e in store.audit_entries()]
        assert store.verify_audit().ok
    assert actions.count("config.first_seen") == 1
    assert actions.count("config.changed_while_stopped") == 1
    assert "provision.certificate" in actions and "store.day_key_damaged" in actions
    assert actions.index("config.changed_while_stopped") > actions.index("config.first_seen")


def test_a_unit_with_a_tpm_seals_its_kek_and_status_says_so(tmp_path):
    """The daemon picks the TPM (here swtpm, named by VIGIL_TPM_TCTI) for a new unit: no key
    file is written, and `vigil status` names the source."""
    with software_tpm(tmp_path / "tpm") as tcti:
        rig = SimulatedRig(tmp_path, _config(tmp_path), env={TCTI_ENV: tcti})
        try:
            rig.start()
            rig.wait_ready()
            rig.wait_for(lambda: len(rig.reads) >= 1, 60, "a read")
            status = rig.control("status")
            rc, _ = rig.stop()
        finally:
            rig.close()
    assert rc == 0, "\n".join(rig.stderr_lines[-20:])
    assert status["store"]["key_source"] == f"tpm:{tcti}"
    state = tmp_path / "state"
    assert (state / SEALED_PRIV).is_file() and not list(state.glob("kek.bin"))
