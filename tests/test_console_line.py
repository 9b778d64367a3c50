"""Console line editing, input decoding and command parsing (pure)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from firmware import config
from firmware.console.auth import ScryptParams, hash_password
from firmware.console.serial_console import (
    EndOfInput,
    InputRejected,
    Interrupt,
    Line,
    LineEditor,
    decode_line,
    parse_command,
    printable,
)


def feed(ed: LineEditor, data: bytes, echo: bool = True) -> tuple[bytes, list[Any]]:
    out = bytearray()
    events = []
    for b in data:
        e, ev = ed.push(b, echo)
        out += e
        if ev is not None:
            events.append(ev)
    return bytes(out), events


def test_cr_lf_and_crlf_each_end_one_line() -> None:
    ed = LineEditor(64)
    _, events = feed(ed, b"a\rb\nc\r\nd\r\x00e\n")
    assert events == [Line(b"a"), Line(b"b"), Line(b"c"), Line(b"d"), Line(b"e")]


def test_echo_and_backspace_remove_whole_utf8_characters() -> None:
    ed = LineEditor(64)
    echo, events = feed(ed, "ab\u00e9".encode() + b"\x7f\x08c\r")
    assert events == [Line(b"ac")]
    assert echo.startswith(b"ab\xc3\xa9\b \b\b \bc")


def test_no_echo_when_asked() -> None:
    ed = LineEditor(64)
    echo, events = feed(ed, b"s3cret\r", echo=False)
    assert b"s3cret" not in echo
    assert events == [Line(b"s3cret")]


def test_overflow_cuts_and_flags_the_line_then_recovers() -> None:
    ed = LineEditor(8)
    echo, events = feed(ed, b"0123456789abc\rok\r")
    assert events == [Line(b"01234567", overflow=True), Line(b"ok")]
    assert b"89abc" not in echo


def test_ctrl_c_ctrl_u_ctrl_d() -> None:
    ed = LineEditor(64)
    _, events = feed(ed, b"abc\x03def\x15\x04x\x04\r")
    assert events == [Interrupt(), Interrupt(), EndOfInput(), Line(b"x")]


def test_tab_is_a_space_and_control_bytes_are_kept_for_rejection() -> None:
    ed = LineEditor(64)
    _, events = feed(ed, b"a\tb\x1b[A\r")
    assert events == [Line(b"a b\x1b[A")]
    with pytest.raises(InputRejected, match="control characters"):
        decode_line(events[0], 64)


def test_decode_line_errors() -> None:
    with pytest.raises(InputRejected, match="not valid UTF-8"):
        decode_line(Line(b"\xff\xfe"), 64)
    with pytest.raises(InputRejected, match="too long"):
        decode_line(Line(b"x", overflow=True), 64)
    assert decode_line(Line("  caf\u00e9 ".encode()), 64) == "caf\u00e9"


def test_parse_command_options_and_quoting() -> None:
    c = parse_command('Reads search AB12CD reason="case 1234"')
    assert c.name == "reads"
    assert c.args == ("search", "AB12CD")
    assert c.options == {"reason": "case 1234"}
    with pytest.raises(InputRejected, match="malformed quoting"):
        parse_command('reads search X reason="case')
    with pytest.raises(InputRejected, match="twice"):
        parse_command("reads search X reason=a reason=b")


def test_printable_replaces_escape_sequences() -> None:
    assert printable("ok\x1b[2Jx") == "ok?[2Jx"


def _validate(section: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> config.Settings:
    site = {"site_latitude": 45.0, "site_longitude": -122.0}
    return config.validate({"unit": site, "console": section}, "test.toml")


def test_console_section_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    h = hash_password("pw-1234567890")  # OWASP parameters
    s = _validate({"enabled": True, "password_hash": h, "port": "loop://"}, monkeypatch)
    assert s.console.enabled and s.console.port == "loop://"
    assert s.console.user == "installer"
    assert config.redacted(s)["console"]["password_hash"] == "<redacted>"
    assert h not in repr(s.console)
    with pytest.raises(config.ConfigError, match="needs a login"):
        _validate({"enabled": True}, monkeypatch)
    with pytest.raises(config.ConfigError, match="password_hash"):
        _validate({"password_hash": "scrypt$garbage"}, monkeypatch)
    weak = hash_password("pw-1234567890", ScryptParams(n=2**15, p=1))  # the old default
    with pytest.raises(config.ConfigError, match="OWASP"):
        _validate({"password_hash": weak}, monkeypatch)
    with pytest.raises(config.ConfigError, match="accounts_key"):
        _validate({"accounts_file": "/etc/vigil/accounts.txt"}, monkeypatch)
    with pytest.raises(config.ConfigError, match="service_key"):
        _validate({"service_key": "bm90IGEga2V5"}, monkeypatch)
    with pytest.raises(config.ConfigError, match="user"):
        _validate({"user": "service"}, monkeypatch)
    with pytest.raises(config.ConfigError, match="baud"):
        _validate({"baud": 12345}, monkeypatch)
    with pytest.raises(config.ConfigError, match="between"):
        _validate({"max_line_bytes": 8}, monkeypatch)
    assert not _validate({}, monkeypatch).console.enabled


@pytest.mark.parametrize(("section", "key"), [
    ("console", "lockout_s"), ("console", "idle_timeout_s"), ("uplink", "timeout_s"),
    ("hotlists", "poll_interval_s")])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_infinity_are_refused_with_the_key_named(section: str, key: str,
                                                         value: float) -> None:
    """`lockout_s = nan` once disabled the lockout (NaN passes every range comparison)."""
    site = {"site_latitude": 45.0, "site_longitude": -122.0}
    with pytest.raises(config.ConfigError, match=rf"\[{section}\] {key}: must be a finite"):
        config.validate({"unit": site, section: {key: value}}, "test.toml")
