from __future__ import annotations

import os

import pytest
import serial  # type: ignore[import-untyped]

from drivers.clock import SystemClock
from drivers.errors import DriverError
from drivers.serial_port import LineReader, SerialError, SerialTimeout, open_serial


@pytest.fixture()
def loop() -> serial.SerialBase:
    port = open_serial("loop://", 115200, read_timeout_s=0.01)
    yield port
    port.close()


def test_cr_lf_crlf_and_blank_lines(loop: serial.SerialBase) -> None:
    r = LineReader(loop, SystemClock())
    loop.write(b"one\rtwo\nthree\r\n\r\n\nfour\r\n")
    assert [r.read_line(1.0) for _ in range(4)] == ["one", "two", "three", "four"]
    assert r.lines == 4


def test_partial_line_waits_and_then_times_out(loop: serial.SerialBase) -> None:
    r = LineReader(loop, SystemClock())
    loop.write(b"no terminator yet")
    with pytest.raises(SerialTimeout) as info:
        r.read_line(0.1)
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, DriverError)
    loop.write(b" - now\n")
    assert r.read_line(1.0) == "no terminator yet - now"


def test_overlong_lines_are_dropped_and_counted(loop: serial.SerialBase) -> None:
    r = LineReader(loop, SystemClock(), max_line_bytes=16)
    loop.write(b"x" * 1000 + b"\nshort\n" + b"y" * 17 + b"\r\nok\n")
    assert r.read_line(1.0) == "short"
    assert r.read_line(1.0) == "ok"
    assert r.overlong == 2


def test_garbage_bytes_are_replaced_not_raised(loop: serial.SerialBase) -> None:
    r = LineReader(loop, SystemClock())
    loop.write(b"\xff\xfe$GPRMC\x00,1\n")
    line = r.read_line(1.0)
    assert line.endswith("$GPRMC\x00,1") and "\ufffd" in line


def test_write_line_uses_crlf(loop: serial.SerialBase) -> None:
    r = LineReader(loop, SystemClock())
    r.write_line("status")
    assert loop.read(8) == b"status\r\n"


def test_pty_pair() -> None:
    master, slave = os.openpty()
    try:
        port = open_serial(os.ttyname(slave), 9600, read_timeout_s=0.02)
        with LineReader(port, SystemClock()) as r:
            os.write(master, b"hello pty\r\n")
            assert r.read_line(2.0) == "hello pty"
    finally:
        os.close(master)
        os.close(slave)


def test_open_missing_port() -> None:
    with pytest.raises(SerialError) as info:
        open_serial("/dev/does-not-exist-tty")
    assert isinstance(info.value, OSError)


def test_min_line_length() -> None:
    with pytest.raises(ValueError):
        LineReader(open_serial("loop://"), SystemClock(), max_line_bytes=2)
