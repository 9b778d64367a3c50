"""The console's `ota` command shows the OTA worker's status (and says when OTA is off)."""

from __future__ import annotations

from pathlib import Path

from drivers.clock import FakeClock
from firmware.console.auth import LoginThrottle, ScryptParams, hash_password
from firmware.console.serial_console import ConsoleSession, ConsoleSettings, LineEditor
from tests.kit import open_store

HASH = hash_password("pw-ota-long-1", ScryptParams(n=2**10))


def _type(session: ConsoleSession, cfg: ConsoleSettings, text: bytes) -> str:
    editor, out = LineEditor(cfg.max_line_bytes), []
    for byte in text:
        _, event = editor.push(byte, session.echo)
        if event is not None:
            out.append(session.handle(event))
    return "".join(out)


def test_ota_command(tmp_path: Path) -> None:
    clock = FakeClock()
    store = open_store(tmp_path / "c.db", clock=clock)
    cfg = ConsoleSettings(enabled=True, password_hash=HASH)
    status = {"state": "running", "ota": {"step": "trial", "slot": "b", "version": "1.1.0",
                                          "progress_pct": None, "last": "trial of 1.1.0"}}
    try:
        s = ConsoleSession(cfg, store, lambda: status, clock,
                           LoginThrottle(cfg.max_failures, cfg.lockout_s))
        out = _type(s, cfg, b"installer\rpw-ota-long-1\rota\r")
        assert "step: trial" in out and "slot: b" in out and "version: 1.1.0" in out
        assert "ota" in _type(s, cfg, b"help\r")
        status.pop("ota")
        assert "not enabled" in _type(s, cfg, b"ota\r")
    finally:
        store.close()
