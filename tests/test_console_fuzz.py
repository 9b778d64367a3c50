"""Nothing typed at the console raises: random bytes through the editor and the session, logged
in and not, against a real store."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.clock import FakeClock
from firmware.console.auth import LoginThrottle, ScryptParams, hash_password
from firmware.console.serial_console import ConsoleSession, ConsoleSettings, LineEditor
from tests.kit import open_store

HASH = hash_password("pw-fuzz-1", ScryptParams(n=2**10))
WORDS = [b"help", b"status", b"reads search ", b"search ", b"reason=", b'"', b"'", b"audit ",
         b"verify", b"stats ", b"outbox", b"whoami", b"logs ", b"\r", b"\n", b"\x03", b"\x04",
         b"\x7f", b"\x1b[A", b"\xff", b"=", b"-1", b"99999999999999999999"]


def test_random_input_never_raises(tmp_path: Path) -> None:
    clock = FakeClock()
    store = open_store(tmp_path / "f.db", clock=clock)
    cfg = ConsoleSettings(enabled=True, password_hash=HASH, max_line_bytes=48, max_failures=20)

    @settings(max_examples=150, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(chunks=st.lists(st.one_of(st.sampled_from(WORDS), st.binary(max_size=40)),
                           max_size=30),
           login_first=st.booleans())
    def run(chunks: list[bytes], login_first: bool) -> None:
        session = ConsoleSession(cfg, store, lambda: {"state": "running"}, clock,
                                 LoginThrottle(cfg.max_failures, cfg.lockout_s),
                                 logs_fn=lambda n: ["line"] * n)
        editor = LineEditor(cfg.max_line_bytes)
        prefix = b"technician\rpw-fuzz-1\r" if login_first else b""
        for byte in prefix + b"".join(chunks):
            _echo, event = editor.push(byte, session.echo)
            if event is not None:
                out = session.handle(event)
                assert isinstance(out, str)
                assert "pw-fuzz-1" not in out
            session.tick()

    try:
        run()
    finally:
        store.close()
