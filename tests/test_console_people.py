"""People at the console, over a real pseudo-terminal: per-person accounts from a signed list,
roles that limit commands (and the store that checks again), the vendor-signed field-service
login, and a lockout that survives a restart of the console."""

from __future__ import annotations

import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drivers.clock import FakeClock
from firmware.console.accounts import public_key_text, sign_accounts, sign_service_response
from storage.roles import Role
from tests.kit import make_read
from tests.test_console_session import AGENCY, HASH, PASSWORD, PEOPLE, Rig

VENDOR = Ed25519PrivateKey.generate()


def test_technician_sees_health_but_no_plate_data_and_is_audited_by_name(tmp_path: Path) -> None:
    rig = Rig(tmp_path).start()
    try:
        rig.store.put_read(make_read(plate="AB123CD"))
        assert b"Logged in as tom (technician)" in rig.login(user="tom")
        assert "reads search" not in rig.run("help")
        assert "state: running" in rig.run("status")
        out = rig.run('reads search AB123CD reason="case 2026-1142"')
        assert "not allowed for role technician" in out and "AB123CD\r\n  " not in out
        rig.term.send("logout\r")
        rig.term.expect("login: ")
        assert b"Logged in as ines (installer)" in rig.login(user="ines")
        assert "not allowed for role installer" in rig.run('search AB123CD reason="case 2026-9"')
        entries = rig.audit()
    finally:
        rig.close()
    assert entries[0][:2] == ("console:tom", "technician")
    assert ("console:tom", "technician", "console.command", "", "denied") in entries
    assert ("console:ines", "installer", "console.command", "", "denied") in entries
    assert not [e for e in entries if e[0] == "console:technician"]


def test_a_restart_does_not_reset_the_failed_login_count(tmp_path: Path) -> None:
    """4 wrong, restart, 4 wrong, right used to log in; the count now lives in a file."""
    clock = FakeClock()
    first = Rig(tmp_path, clock=clock, max_failures=5).start()
    try:
        for _ in range(4):
            assert b"Login incorrect" in first.login("wrong-password-1")
    finally:
        first.close()
    again = Rig(tmp_path, clock=clock, db_name="after-restart.db", max_failures=5).start()
    try:
        out = again.login("wrong-password-2")
        assert b"console locked after 5 failed logins" in out
        again.term.send("ivy\r")
        assert b"try again in 60 s" in again.term.expect("login: ")
    finally:
        again.close()
    state = (tmp_path / "console-lockout.json").stat()
    assert state.st_mode & 0o077 == 0


def test_lockouts_double_and_survive_a_restart_in_the_middle(tmp_path: Path) -> None:
    clock = FakeClock()
    rig = Rig(tmp_path, clock=clock).start()
    try:
        for _ in range(3):
            rig.login("wrong-password-1")
        clock.advance(61.0)
        for _ in range(3):
            out = rig.login("wrong-password-2")
        assert b"try again in 120 s" in out  # the second lockout in a row is twice as long
    finally:
        rig.close()
    clock.advance(100.0)
    again = Rig(tmp_path, clock=clock, db_name="after-restart.db").start()
    try:
        again.term.send("ivy\r")
        assert b"try again in 20 s" in again.term.expect("login: ")
        clock.advance(21.0)
        assert b"Logged in" in again.login()
        again.term.send("logout\r")
        again.term.expect("login: ")
        for _ in range(3):
            out = again.login("wrong-password-3")
        assert b"try again in 60 s" in out  # a good login starts the backoff over
    finally:
        again.close()


def test_a_tampered_account_list_is_refused_shown_and_audited(tmp_path: Path) -> None:
    listed = tmp_path / "accounts.txt"
    Rig(tmp_path, db_name="first.db").close()  # writes the signed list
    listed.write_bytes(listed.read_bytes().replace(b"account tom technician",
                                                   b"account tom admin"))
    rig = Rig(tmp_path).start()
    try:
        rig.term.send("tom\r")
        rig.term.expect("password: ")
        rig.term.send(PASSWORD + "\r")
        assert b"Login incorrect" in rig.term.expect("login: ")
        status = rig.console.status().as_dict()
        assert status["accounts"] == 0 and "does not verify" in status["accounts_error"]
        (refused,) = [e for e in rig.store.audit_entries() if e.action == "console.accounts"]
        assert refused.result == "refused"
    finally:
        rig.close()


def test_an_older_signed_account_list_put_back_is_refused(tmp_path: Path) -> None:
    listed = tmp_path / "accounts.txt"
    rows = [(n, r, HASH) for n, r in PEOPLE]
    clock = FakeClock()
    listed.write_bytes(sign_accounts(AGENCY, 5, rows, clock.utcnow()))
    rig = Rig(tmp_path, clock=clock).start()
    try:
        assert rig.console.status().as_dict()["accounts_error"] is None
        rig.console.load_accounts()  # the same version again, at the next start: accepted
        assert rig.console.accounts_error is None and len(rig.console.accounts) == 3
        # An older signed list (kept from before someone was removed) is put back on the card.
        listed.write_bytes(sign_accounts(AGENCY, 4, rows, clock.utcnow()))
        rig.console.load_accounts()
        assert "older than version 5" in str(rig.console.accounts_error)
        assert rig.console.accounts == {}
    finally:
        rig.close()


def test_offline_field_service_login_signed_by_the_vendor(tmp_path: Path) -> None:
    rig = Rig(tmp_path, service_key=public_key_text(VENDOR)).start()
    try:
        rig.term.send("service\r")
        text = rig.term.expect("response: ").decode()
        (challenge,) = re.findall(r"challenge: (\S+)", text)
        assert "cam-1" in challenge
        # A response for another challenge (another unit, or an old one) is refused.
        stale = sign_service_response(VENDOR, challenge + "x", "sam", Role.TECHNICIAN)
        rig.term.send(stale + "\r")
        assert b"Login incorrect" in rig.term.expect("login: ")
        rig.term.send("service\r")
        text = rig.term.expect("response: ").decode()
        (challenge,) = re.findall(r"challenge: (\S+)", text)
        # Signed by someone else's key: refused.
        forged = sign_service_response(Ed25519PrivateKey.generate(), challenge, "sam",
                                       Role.ADMIN)
        rig.term.send(forged + "\r")
        assert b"Login incorrect" in rig.term.expect("login: ")
        rig.term.send("service\r")
        text = rig.term.expect("response: ").decode()
        (challenge,) = re.findall(r"challenge: (\S+)", text)
        rig.term.send(sign_service_response(VENDOR, challenge, "sam", Role.TECHNICIAN) + "\r")
        assert b"Logged in as sam (technician)" in rig.term.expect("vigil> ")
        assert "user: sam" in rig.run("whoami")
        logins = [(e.actor, e.role, e.reason, e.result) for e in rig.store.audit_entries()
                  if e.action == "console.login"]
    finally:
        rig.close()
    assert logins == [("console:unknown", "unauthenticated", "service", "failed")] * 2 + [
        ("console:sam", "technician", "service", "ok")]
    assert PASSWORD not in str(logins)
