"""A real console session over a pseudo-terminal: pyserial opens the pty's device end exactly as
it opens /dev/ttyAMA0, the test types at the other end. The store is a real encrypted Store, the
people log in from a real signed account list, and the lockout is kept in a real file."""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drivers.clock import FakeClock
from firmware.console.accounts import public_key_text, sign_accounts
from firmware.console.auth import hash_password
from firmware.console.serial_console import Console, ConsoleError, ConsoleSettings, serial_factory
from tests.kit import make_read, open_store

PASSWORD = "road-side-42-pole"
#: At the default (OWASP) parameters: the signed list refuses anything weaker.
HASH = hash_password(PASSWORD)
AGENCY = Ed25519PrivateKey.generate()
PEOPLE = (("ivy", "investigator"), ("tom", "technician"), ("ines", "installer"))


class Terminal:
    """The technician's end of the line."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)
        self.seen = bytearray()  # everything received so far
        self._pos = 0  # where the next expect() starts looking

    def send(self, data: bytes | str) -> None:
        os.write(self.master, data.encode() if isinstance(data, str) else data)

    def expect(self, marker: bytes | str, timeout: float = 5.0) -> bytes:
        """Read until ``marker`` appears after the last match; return the text up to it."""
        m = marker.encode() if isinstance(marker, str) else marker
        deadline = time.monotonic() + timeout
        while True:
            i = self.seen.find(m, self._pos)
            if i >= 0:
                chunk = bytes(self.seen[self._pos:i + len(m)])
                self._pos = i + len(m)
                return chunk
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{m!r} not seen; got {bytes(self.seen[self._pos:])!r}")
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                with contextlib.suppress(OSError):
                    self.seen += os.read(self.master, 4096)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class Rig:
    def __init__(self, tmp_path: Path, clock: FakeClock | None = None, db_name: str = "vigil.db",
                 **overrides: Any) -> None:
        self.tmp_path = tmp_path
        self.clock = clock or FakeClock()
        self.store = open_store(tmp_path / db_name, clock=self.clock)
        self.term = Terminal()
        accounts = tmp_path / "accounts.txt"
        if not accounts.exists():
            accounts.write_bytes(sign_accounts(AGENCY, 1, [(n, r, HASH) for n, r in PEOPLE],
                                               self.clock.utcnow()))
        kw: dict[str, Any] = {"enabled": True, "port": self.term.path,
                              "accounts_file": str(accounts),
                              "accounts_key": public_key_text(AGENCY),
                              "max_failures": 3, "lockout_s": 60.0, "idle_timeout_s": 120.0,
                              "max_line_bytes": 192}
        kw.update(overrides)
        self.settings = ConsoleSettings(**kw)
        self.status: dict[str, Any] = {
            "state": "running", "version": "0.1.0", "camera_id": "cam-1",
            "frame_rate_fps": 9.87, "queue_depth": {"alerts": 0, "reads": 2},
            "last_read": {"read_id": "r-1", "time": "2026-11-23T12:00:00+00:00",
                          "plate": "SECRET1", "confidence": 0.97},
            "workers": {"pipeline": {"state": "running", "restarts": 1, "last_error": None}},
        }
        self.status_error: Exception | None = None
        self.logs = [f"log line {i}" for i in range(30)]
        self.console = Console(self.settings, serial_factory(self.settings), self.store,
                               self._status, self.clock, logs_fn=lambda n: self.logs[-n:],
                               state_dir=tmp_path)
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _status(self) -> dict[str, Any]:
        if self.status_error is not None:
            raise self.status_error
        return self.status

    def _run(self) -> None:
        try:
            self.console.run(self.stop)
        except BaseException as e:  # noqa: BLE001 - surfaced by the test
            self.error = e

    def start(self) -> Rig:
        self.thread.start()
        self.term.expect("login: ")
        return self

    def login(self, password: str = PASSWORD, user: str = "ivy") -> bytes:
        self.term.send(f"{user}\r")
        self.term.expect("password: ")
        self.term.send(f"{password}\r")
        ok = password == PASSWORD and user in dict(PEOPLE)
        return self.term.expect("vigil> " if ok else "login: ")

    def run(self, command: str) -> str:
        self.term.send(command + "\r")
        return self.term.expect("vigil> ").decode()

    def audit(self) -> list[tuple[str, str, str, str, str]]:
        return [(e.actor, e.role, e.action, e.reason, e.result)
                for e in self.store.audit_entries() if e.actor.startswith("console:")]

    def shutdown(self) -> float:
        t0 = time.monotonic()
        self.stop.set()
        self.thread.join(5)
        took = time.monotonic() - t0
        assert not self.thread.is_alive()
        return took

    def close(self) -> None:
        if self.thread.is_alive():
            self.shutdown()
        self.term.close()
        self.store.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r.start()
    r.close()
    assert r.error is None


def test_login_every_command_and_logout_are_audited(rig: Rig) -> None:
    rig.store.put_read(make_read(plate="AB123CD"))
    rig.store.put_read(make_read(plate="ZZ999ZZ"))
    out = rig.login()
    assert b"Logged in as ivy (investigator)" in out
    assert PASSWORD.encode() not in rig.term.seen  # never echoed

    help_text = rig.run("help")
    for word in ("status", "reads search", "audit verify", "stats", "outbox", "logs", "whoami",
                 "logout"):
        assert word in help_text

    status = rig.run("status")
    assert "state: running" in status and "frame_rate_fps: 9.87" in status
    assert "pipeline: running, restarts 1" in status
    assert "queue_depth: alerts=0 reads=2" in status
    assert "SECRET1" not in status and "r-1" not in status  # plates only via an audited search

    assert "0 read(s)" in rig.run('reads search ZZ000ZZ reason="case 2026-77"')
    found = rig.run('search ab123cd reason="case 2026-1234"')
    assert "1 read(s)" in found and "AB123CD" in found and "conf 0.97" in found
    assert "ZZ999ZZ" not in found

    verify = rig.run("audit verify")
    assert "audit chain: OK" in verify

    stats = rig.run("stats 7")
    assert "window_days: 7" in stats and "searches: 2" in stats

    outbox = rig.run("outbox")
    assert "reads: 2" in outbox and "total: 2" in outbox

    logs = rig.run("logs 3")
    assert "log line 27" in logs and "log line 29" in logs and "log line 26" not in logs

    assert "role: investigator" in rig.run("whoami")

    rig.term.send("logout\r")
    rig.term.expect("logged out")
    rig.term.expect("login: ")

    actor = "console:ivy"
    entries = rig.audit()
    assert entries[0] == (actor, "investigator", "console.login", "password", "ok")
    assert {e[:2] for e in entries} == {(actor, "investigator")}  # the person, every entry
    commands = [(e[2], e[4]) for e in entries[1:]]
    assert commands == [
        ("console.command", "ok"),  # help
        ("console.command", "ok"),  # status
        ("plate.search", "ok"),
        ("plate.search", "ok"),
        ("console.command", "ok"),  # audit verify
        ("console.command", "ok"),  # stats
        ("console.command", "ok"),  # outbox
        ("console.command", "ok"),  # logs
        ("console.command", "ok"),  # whoami
        ("console.logout", "ok"),
    ]
    searches = [e for e in rig.store.audit_entries() if e.action == "plate.search"]
    assert [e.reason for e in searches] == ["case 2026-77", "case 2026-1234"]
    assert all("AB123CD" not in str(e.detail) for e in rig.store.audit_entries())
    details = [e.detail.get("command") for e in rig.store.audit_entries()
               if e.action == "console.command"]
    assert details == ["help", "status", "audit", "stats", "outbox", "logs", "whoami"]
    assert rig.store.verify_audit().ok


def test_search_without_reason_is_refused_and_audited(rig: Rig) -> None:
    rig.store.put_read(make_read(plate="AB123CD"))
    rig.login()
    out = rig.run("reads search AB123CD")
    assert out.startswith("reads search AB123CD\r\ndenied:")
    assert "AB123CD\r\n  " not in out
    out = rig.run("reads search AB123CD reason=abc")
    assert "denied" in out and "case number" in out
    assert "usage:" in rig.run("reads AB123CD")
    denied = [e for e in rig.store.audit_entries() if e.action == "plate.search"]
    assert [e.result for e in denied] == ["denied", "denied"]
    assert rig.store.stats()["searches_denied"] == 2
    usage = [e for e in rig.store.audit_entries() if e.result == "usage"]
    assert usage and usage[0].detail["command"] == "reads"


def test_failed_logins_lock_the_console_until_the_fake_clock_moves(rig: Rig) -> None:
    for _ in range(2):
        assert b"Login incorrect" in rig.login("wrong-password")
    out = rig.login("wrong-again")
    assert b"console locked after 3 failed logins" in out
    assert rig.console.status().as_dict() == {  # pinned
        "logged_in": False, "locked_for_s": 60.0, "accounts": 3, "accounts_error": None}
    # The right password does not help while locked: no password prompt is even offered.
    rig.term.send("ivy\r")
    assert b"try again in 60 s" in rig.term.expect("login: ")
    rig.clock.advance(59.0)
    rig.term.send("ivy\r")
    assert b"try again in 1 s" in rig.term.expect("login: ")
    rig.clock.advance(1.5)
    assert b"Logged in" in rig.login()
    entries = rig.audit()
    assert [(e[2], e[4]) for e in entries] == [
        ("console.login", "failed"), ("console.login", "failed"), ("console.login", "failed"),
        ("console.lockout", "locked"), ("console.login", "ok"),
    ]
    assert b"wrong-password" not in rig.term.seen


def test_unknown_user_fails_like_a_bad_password_and_is_not_written_down(rig: Rig) -> None:
    assert b"Login incorrect" in rig.login(PASSWORD, user="my-secret-typed-here")
    (entry,) = [e for e in rig.store.audit_entries() if e.action == "console.login"]
    assert entry.actor == "console:unknown" and entry.result == "failed"
    assert entry.detail["user_known"] is False
    assert "my-secret" not in str(entry)


def test_typed_ahead_password_is_not_echoed(rig: Rig) -> None:
    rig.term.send(f"ivy\r{PASSWORD}\r")
    rig.term.expect("vigil> ")
    assert PASSWORD.encode() not in rig.term.seen


def test_garbage_and_bad_lines_get_an_error_and_the_session_survives(rig: Rig) -> None:
    rig.term.send(b"\xff\xfe\x80\r")
    assert b"not valid UTF-8" in rig.term.expect("login: ")
    rig.login()
    cases = [
        (b"\xc3\x28 status\r", "not valid UTF-8"),
        (b"status\x1b[A\r", "control characters are not allowed"),
        (b"x" * 500 + b"\r", "line too long (max 192 bytes)"),
        (b'reads search AB reason="unterminated\r', "malformed quoting"),
        (b"rm -rf /\r", "unknown command"),
        (b"sh\r", "unknown command"),
        (b"stats many\r", "usage: stats [DAYS]"),
        (b"logs 100000\r", "usage: logs [N]"),
        (b"audit\r", "usage: audit verify"),
    ]
    for data, message in cases:
        rig.term.send(data)
        assert message.encode() in rig.term.expect("vigil> "), message
    assert "role: investigator" in rig.run("whoami")
    results = [e.result for e in rig.store.audit_entries() if e.action == "console.command"]
    assert results == ["rejected"] * 4 + ["unknown"] * 2 + ["usage"] * 3 + ["ok"]
    assert all("rf" not in str(e.detail) for e in rig.store.audit_entries())


def test_a_failing_command_becomes_an_error_line(rig: Rig) -> None:
    rig.login()
    rig.status_error = RuntimeError("boom")
    assert "error: status failed: RuntimeError" in rig.run("status")
    rig.status_error = None
    assert "state: running" in rig.run("status")
    results = [e.result for e in rig.store.audit_entries() if e.action == "console.command"]
    assert results == ["error", "ok"]


def test_idle_timeout_logs_out(rig: Rig) -> None:
    rig.login()
    rig.clock.advance(119.0)
    time.sleep(0.3)
    assert b"idle timeout" not in rig.term.seen
    rig.clock.advance(2.0)
    rig.term.expect("idle timeout: logged out")
    rig.term.expect("login: ")
    assert rig.audit()[-1] == ("console:ivy", "investigator", "console.logout",
                               "idle timeout", "ok")
    rig.term.send("whoami\r")  # now a user name, not a command
    rig.term.expect("password: ")


def test_abandoned_password_prompt_times_out(rig: Rig) -> None:
    rig.term.send("ivy\r")
    rig.term.expect("password: ")
    rig.clock.advance(121.0)
    rig.term.expect("timed out")
    rig.term.expect("login: ")
    assert rig.audit() == []


def test_stop_returns_promptly_and_audits_the_open_session(rig: Rig) -> None:
    rig.login()
    assert rig.shutdown() < 1.0
    rig.term.expect("daemon stopping")
    assert rig.audit()[-1][2:] == ("console.logout", "daemon stopping", "ok")


def test_audit_failure_keeps_diagnostics_but_data_access_fails_closed(tmp_path: Path) -> None:
    r = Rig(tmp_path).start()
    try:
        real_audit = r.store.audit

        def broken(*a: Any, **k: Any) -> Any:
            raise OSError("disk full")

        r.store.audit = broken  # type: ignore[method-assign]
        out = r.login()
        assert b"audit log cannot be written" in out
        assert "state: running" in r.run("status")
        r.store.audit = real_audit  # type: ignore[method-assign]
        r.store.close()  # search goes through the store, which cannot serve it
        assert "error: reads failed: StoreClosed" in r.run(
            'reads search AB1 reason="case 2026-1"')
    finally:
        r.shutdown()
        r.term.close()
    assert r.error is None


def test_port_that_cannot_be_opened_raises_console_error(tmp_path: Path) -> None:
    settings = ConsoleSettings(port=str(tmp_path / "no-such-tty"))
    with pytest.raises(ConsoleError, match="cannot open console port"):
        serial_factory(settings)()


def test_hang_up_raises_console_error_for_the_supervisor(tmp_path: Path) -> None:
    r = Rig(tmp_path).start()
    try:
        r.login()
        os.close(r.term.master)
        os.close(r.term.slave)
        r.thread.join(5)
        assert not r.thread.is_alive()
        assert isinstance(r.error, ConsoleError)
        assert r.audit()[-1][2:] == ("console.logout", "port error", "ok")
    finally:
        r.stop.set()
        r.store.close()
