"""Nothing typed at the console raises: random bytes through the editor and the session, logged
in and not, at the password and the field-service prompts, against a real store."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.clock import FakeClock
from firmware.console.accounts import public_key_text
from firmware.console.auth import LoginThrottle, ScryptParams, hash_password
from firmware.console.serial_console import ConsoleSession, ConsoleSettings, LineEditor
from tests.kit import open_store

HASH = hash_password("pw-fuzz-long-1", ScryptParams(n=2**10))
VENDOR = Ed25519PrivateKey.generate()
WORDS = [b"service\r", b"installer\r", b"help", b"status",
         b"reads search ", b"search ", b"reason=", b'"', b"'", b"audit ",
         b"verify", b"stats ", b"outbox", b"whoami", b"logs ", b"\r", b"\n", b"\x03", b"\x04",
         b"\x7f", b"\x1b[A", b"\xff", b"=", b"-1", b"99999999999999999999"]


def test_random_input_never_raises(tmp_path: Path) -> None:
    clock = FakeClock()
    store = open_store(tmp_path / "f.db", clock=clock)
    cfg = ConsoleSettings(enabled=True, password_hash=HASH, max_line_bytes=48, max_failures=20,
                          service_key=public_key_text(VENDOR))

    @settings(max_examples=150, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(chunks=st.lists(st.one_of(st.sampled_from(WORDS), st.binary(max_size=40)),
                           max_size=30),
           login_first=st.booleans())
    def run(chunks: list[bytes], login_first: bool) -> None:
        session = ConsoleSession(cfg, store, lambda: {"state": "running"}, clock,
                                 LoginThrottle(cfg.max_failures, cfg.lockout_s),
                                 logs_fn=lambda n: ["line"] * n,
                                 service_key=VENDOR.public_key())
        editor = LineEditor(cfg.max_line_bytes)
        prefix = b"installer\rpw-fuzz-long-1\r" if login_first else b""
        for byte in prefix + b"".join(chunks):
            _echo, event = editor.push(byte, session.echo)
            if event is not None:
                out = session.handle(event)
                assert isinstance(out, str)
                assert "pw-fuzz-long-1" not in out
            session.tick()

    try:
        run()
    finally:
        store.close()
