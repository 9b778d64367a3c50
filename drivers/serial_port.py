"""Serial ports: the one seam over ``serial.serial_for_url``, and a line reader on top of it.

``serial_for_url`` gives one interface for real ports (``/dev/ttyUSB0``, ``/dev/ttyAMA0``),
pseudo-terminals, and the test transports ``loop://`` and ``socket://host:port``, so the GPS,
the modem's AT channel and the technician console run unchanged against a loopback in tests and
a real UART on a unit. :func:`open_serial` is the only place pyserial is imported; the port it
returns raises this module's errors (:class:`SerialError`, :class:`SerialWriteTimeout`), never
pyserial's, so callers catch by type rather than by class name.

:class:`LineReader` frames bytes into lines, separate from whoever reads them (pyserial's own
split between ``LineReader`` and ``ReaderThread``): CR, LF and CRLF all end a line; a line
longer than ``max_line_bytes`` is dropped up to its terminator and counted (a baud-rate mismatch
produces endless garbage without newlines, which must not grow memory); bytes that are not
ASCII/UTF-8 are replaced, never raised. Deadlines run on the injected clock's monotonic time.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from drivers.clock import Clock
from drivers.errors import DeviceTimeout, DriverError
from drivers.resource import Closing

log = logging.getLogger(__name__)


class SerialError(DriverError, OSError):
    """The port cannot be opened, or reading/writing it failed."""


class SerialTimeout(DeviceTimeout):
    """No complete line arrived before the deadline."""


class SerialWriteTimeout(SerialError, DeviceTimeout):
    """A write did not complete within the port's write timeout (flow control held off)."""


class ByteStream(Protocol):
    """What :class:`LineReader` needs from a port."""

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...

    def close(self) -> None: ...


class SerialPort(ByteStream, Protocol):
    """An open port as :func:`open_serial` returns it (and what fakes in tests provide)."""

    @property
    def in_waiting(self) -> int: ...


class _Port:
    """A pyserial port whose failures are this module's errors."""

    def __init__(self, port: Any, url: str, write_timeout_type: type[BaseException]) -> None:
        self._port = port
        self._url = url
        self._write_timeout = write_timeout_type

    def read(self, size: int = 1) -> bytes:
        try:
            return bytes(self._port.read(size))
        except Exception as e:  # serial.SerialException, OSError: the port went away
            raise SerialError(f"serial port {self._url}: read failed: {e}") from e

    @property
    def in_waiting(self) -> int:
        try:
            return int(self._port.in_waiting)
        except Exception as e:
            raise SerialError(f"serial port {self._url}: status failed: {e}") from e

    def write(self, data: bytes) -> int | None:
        try:
            return self._port.write(data)  # type: ignore[no-any-return]
        except self._write_timeout as e:
            raise SerialWriteTimeout(f"serial port {self._url}: write timed out") from e
        except Exception as e:
            raise SerialError(f"serial port {self._url}: write failed: {e}") from e

    def close(self) -> None:
        self._port.close()


def open_serial(
    url: str,
    baudrate: int = 9600,
    *,
    read_timeout_s: float = 0.05,
    write_timeout_s: float | None = None,
) -> SerialPort:
    """Open ``url`` (device path, pty, ``loop://``, ``socket://``), 8N1, no flow control.

    Read calls return after at most ``read_timeout_s`` so callers keep their own deadlines; a
    write blocked longer than ``write_timeout_s`` (``None``: no limit) raises
    :class:`SerialWriteTimeout`. Raises :class:`SerialError` when the port cannot be opened.
    """
    import serial  # type: ignore[import-untyped]

    try:
        port = serial.serial_for_url(url, baudrate=baudrate, timeout=read_timeout_s,
                                     write_timeout=write_timeout_s)
    except (serial.SerialException, ValueError, OSError) as e:
        raise SerialError(f"cannot open serial port {url}: {e}") from e
    return _Port(port, url, serial.SerialTimeoutException)


class LineReader(Closing):
    """Reads text lines from a byte stream with a deadline; writes lines with CRLF.

    Counters (``lines``, ``overlong``) are plain attributes for health reporting.
    """

    def __init__(
        self,
        port: ByteStream,
        clock: Clock,
        *,
        max_line_bytes: int = 256,
        chunk: int = 64,
    ) -> None:
        if max_line_bytes < 8:
            raise ValueError("max_line_bytes must be >= 8")
        self._port = port
        self._clock = clock
        self._max = max_line_bytes
        self._chunk = chunk
        self._buf = bytearray()
        self._discarding = False
        self._pending: list[bytes] = []
        self.lines = 0
        self.overlong = 0

    def _feed(self, data: bytes) -> None:
        for b in data:
            if b in (0x0A, 0x0D):
                if self._discarding:
                    self._discarding = False
                elif self._buf:
                    self._pending.append(bytes(self._buf))
                # an empty line (the LF of a CRLF, or blank lines) carries nothing
                self._buf.clear()
                continue
            if self._discarding:
                continue
            if len(self._buf) >= self._max:
                self.overlong += 1
                self._buf.clear()
                self._discarding = True
                continue
            self._buf.append(b)

    def read_line(self, timeout_s: float) -> str:
        """The next non-empty line (without its terminator), or :class:`SerialTimeout`."""
        deadline = self._clock.monotonic() + timeout_s
        while not self._pending:
            if self._clock.monotonic() >= deadline:
                raise SerialTimeout(f"no line within {timeout_s:.3f} s")
            try:
                data = self._port.read(self._chunk)
            except Exception as e:  # serial.SerialException, OSError: the port went away
                raise SerialError(f"serial read failed: {e}") from e
            if data:
                self._feed(data)
        self.lines += 1
        return self._pending.pop(0).decode("utf-8", errors="replace")

    def write_line(self, text: str) -> None:
        try:
            self._port.write(text.encode("utf-8") + b"\r\n")
        except Exception as e:
            raise SerialError(f"serial write failed: {e}") from e

    def close(self) -> None:
        self._port.close()
