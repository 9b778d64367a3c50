"""The real daemon's console on a pseudo-terminal: a person from the signed account list logs in
by name, and the failed-login count survives a restart of the daemon (issue: 4 wrong, restart,
4 wrong, then the right password logged in)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from firmware.console.accounts import public_key_text, sign_accounts
from hil.rig import SimulatedRig
from tests.test_console_session import AGENCY, HASH, PASSWORD, PEOPLE, Terminal

pytestmark = pytest.mark.hil


def _config(tmp_path, port: str) -> str:
    accounts = tmp_path / "accounts.txt"
    accounts.write_bytes(sign_accounts(AGENCY, 1, [(n, r, HASH) for n, r in PEOPLE],
                                       datetime.now(UTC)))
    return f"""
[unit]
camera_id = "hil-console"
site_latitude = 45.0
site_longitude = -122.0

[camera]
backend = "replay"
loop = true
realtime = true
fps = 5.0

[illuminator]
pin_factory = "mock"

[console]
enabled = true
port = "{port}"
accounts_file = "{accounts}"
accounts_key = "{public_key_text(AGENCY)}"
max_failures = 3
lockout_s = 600.0
"""


def _attempt(term: Terminal, user: str, password: str) -> bytes:
    term.send(f"{user}\r")
    term.expect("password: ", timeout=20)
    term.send(f"{password}\r")
    return term.expect("login: " if password != PASSWORD else "vigil> ", timeout=20)


def test_named_login_and_a_lockout_count_that_survives_a_daemon_restart(tmp_path):
    term = Terminal()
    cfg = _config(tmp_path, term.path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = SimulatedRig(tmp_path / "a", cfg)
    try:
        first.start()
        first.wait_ready()
        term.expect("login: ", timeout=30)
        assert b"Logged in as ivy (investigator)" in _attempt(term, "ivy", PASSWORD)
        term.send("logout\r")
        term.expect("login: ", timeout=20)
        for _ in range(2):
            assert b"Login incorrect" in _attempt(term, "ivy", "not-the-password")
        rc, _took = first.stop()
        assert rc == 0
    finally:
        first.close()
    again = SimulatedRig(tmp_path / "b", cfg)
    again.state = first.state  # the same unit: the same state directory
    try:
        again.start()
        again.wait_ready()
        term.expect("login: ", timeout=30)
        out = _attempt(term, "ivy", "still-not-it")
        assert b"console locked after 3 failed logins" in out
        term.send("ivy\r")
        assert b"try again in" in term.expect("login: ", timeout=20)
        rc, _took = again.stop()
        assert rc == 0
    finally:
        again.close()
        term.close()
    with again.open_store() as store:
        logins = [(e.actor, e.role, e.result) for e in store.audit_entries()
                  if e.action in ("console.login", "console.lockout")]
    assert logins == [("console:ivy", "investigator", "ok")] + [
        ("console:ivy", "unauthenticated", "failed")] * 3 + [
        ("console:ivy", "unauthenticated", "locked")]
