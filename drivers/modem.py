"""Cellular modem: AT command channel, response parsers, recovery ladder.

Vigil does not run the data session: ModemManager/NetworkManager (or the modem's own
ECM/RNDIS mode) bring up the IP link, see docs/uplink.md. Vigil uses the modem's AT port only to
*observe* (SIM, registration, operator, signal, ICCID/IMEI) and to *recover* when the data link
stays down: re-register, switch the radio off and on, and finally cut power through a GPIO
line. On a Pi with ModemManager running, use a second AT port (most modems expose several,
e.g. ``/dev/ttyUSB2`` for AT and ``/dev/ttyUSB3`` for ModemManager) or ModemManager's
``--debug`` AT passthrough; two programs on one AT port corrupt each other's replies.

Layers, bottom up:

* :class:`AtChannel` -- framing and command/response over any pyserial-like port. Echo is
  dropped, unsolicited result codes (``RING``, ``+CREG: 1``, ...) go to :attr:`AtChannel.urcs`,
  line noise is dropped and counted, a silent modem raises :class:`DeviceTimeout`.
* parsers (pure): :func:`parse_csq`, :func:`parse_creg`, :func:`parse_cpin`, :func:`parse_cops`,
  :func:`parse_iccid`, :func:`parse_imei`.
* :class:`Modem` -- the queries and the recovery commands.
* :class:`RecoveryLadder` (pure) -- which recovery step is due after how long down.
* :class:`ModemSupervisor` -- the worker: polls the modem, feeds the link state, climbs the ladder.

The scripted modem that speaks AT on a pseudo-terminal (``FakeModem``) and ``FakePowerSwitch``
are test doubles only (the simulation rig has no modem): ``tests/kit/modem.py``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any, Protocol

from drivers.clock import Clock
from drivers.config_keys import setting
from drivers.errors import DeviceTimeout, DriverError
from drivers.resource import Closing
from drivers.serial_port import SerialError, SerialPort, open_serial

log = logging.getLogger(__name__)


class ModemError(DriverError):
    """Root of the modem driver's errors."""


class ModemCommandError(ModemError):
    """The modem answered ``ERROR`` / ``+CME ERROR: n`` to a command."""

    def __init__(self, command: str, final: str) -> None:
        self.command = command
        self.final = final
        super().__init__(f"{command!r} -> {final}")


class ModemTimeout(ModemError, DeviceTimeout):
    """No final result code within the deadline (modem busy, hung or unplugged)."""


# -- framing ---------------------------------------------------------------------------------


FINAL_OK = "OK"
_FINAL_ERRORS = ("ERROR", "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE")
_FINAL_ERROR_PREFIXES = ("+CME ERROR:", "+CMS ERROR:")
#: Unsolicited result codes: reported asynchronously, never part of a command's answer (unless
#: the command asked for that prefix).
URC_PREFIXES = (
    "RING", "+CREG:", "+CEREG:", "+CGREG:", "+CMTI:", "+CLIP:", "+CUSD:", "+CPIN:", "RDY",
    "+QIND:", "^SYSSTART", "+PACSP", "NO CARRIER", "+CGEV:", "POWERED DOWN", "+QUSIM:",
    "SMS DONE", "PB DONE", "+CFUN:",
)
_PRINTABLE = re.compile(r"^[\x20-\x7e]+$")


@dataclass(frozen=True)
class AtResponse:
    command: str
    lines: tuple[str, ...]  # information lines, echo, URCs and noise removed
    final: str


class AtChannel(Closing):
    """Command/response over a serial port, one command at a time (thread-safe)."""

    def __init__(self, port: SerialPort, clock: Clock, timeout_s: float = 2.0) -> None:
        self._port = port
        self._clock = clock
        self.timeout_s = timeout_s
        self._buf = bytearray()
        self._lock = threading.Lock()
        self.urcs: deque[str] = deque(maxlen=100)
        self.noise_lines = 0

    def close(self) -> None:
        self._port.close()

    def _next_line(self, deadline: float) -> str | None:
        while True:
            # split at the first CR or LF, whichever comes first
            cut = [i for i in (self._buf.find(b"\r"), self._buf.find(b"\n")) if i >= 0]
            if cut:
                i = min(cut)
                raw = bytes(self._buf[:i])
                del self._buf[: i + 1]
                if not raw:
                    continue
                line = raw.decode("ascii", errors="replace").strip()
                if not line:
                    continue
                if not _PRINTABLE.match(line):
                    self.noise_lines += 1
                    log.debug("modem line noise dropped", extra={"bytes": len(raw)})
                    continue
                return line
            if self._clock.monotonic() >= deadline:
                return None
            # One byte blocks until data or the port's short timeout; then take what is there.
            chunk = self._port.read(1)
            waiting = self._port.in_waiting
            if chunk and waiting:
                chunk += self._port.read(waiting)
            if chunk:
                self._buf += chunk

    def _drain_pending(self) -> None:
        """Collect URCs that arrived while idle, so they are not taken for an answer."""
        deadline = self._clock.monotonic()  # no waiting: only what is already buffered
        while (line := self._next_line(deadline)) is not None:
            self._urc_or_noise(line)

    def _urc_or_noise(self, line: str) -> None:
        if line.startswith(URC_PREFIXES):
            self.urcs.append(line)
            log.debug("modem URC", extra={"urc": line})
        else:
            self.noise_lines += 1

    def command(
        self, cmd: str, *, expect: str | None = None, timeout_s: float | None = None
    ) -> AtResponse:
        """Send ``cmd`` and wait for its final result code.

        ``expect`` is the prefix of the information line this command answers with (e.g.
        ``+CSQ:``); lines with another URC prefix are set aside as URCs. Raises
        :class:`ModemCommandError` on ``ERROR`` and :class:`ModemTimeout` when no final code
        arrives within ``timeout_s``.
        """
        with self._lock:
            self._drain_pending()
            try:
                self._port.write(cmd.encode("ascii") + b"\r")
            except OSError as e:
                raise ModemError(f"cannot write to modem: {e}") from e
            deadline = self._clock.monotonic() + (timeout_s or self.timeout_s)
            lines: list[str] = []
            while True:
                try:
                    line = self._next_line(deadline)
                except OSError as e:
                    raise ModemError(f"cannot read from modem: {e}") from e
                if line is None:
                    raise ModemTimeout(f"modem did not answer {cmd!r} within deadline")
                if line == cmd or line.upper() == cmd.upper():
                    continue  # echo (ATE1)
                if line == FINAL_OK:
                    return AtResponse(cmd, tuple(lines), line)
                if line in _FINAL_ERRORS or line.startswith(_FINAL_ERROR_PREFIXES):
                    if line == "NO CARRIER" and not cmd.upper().startswith("ATD"):
                        self.urcs.append(line)
                        continue
                    raise ModemCommandError(cmd, line)
                if expect is not None and line.startswith(expect):
                    lines.append(line)
                elif line.startswith(URC_PREFIXES):
                    self.urcs.append(line)
                elif expect is None:
                    lines.append(line)
                else:
                    self.noise_lines += 1


# -- parsers (pure) ------------------------------------------------------------------------


class SimState(StrEnum):
    READY = "ready"
    PIN = "pin_required"
    PUK = "puk_required"
    ABSENT = "absent"
    ERROR = "error"
    UNKNOWN = "unknown"


class RegStat(IntEnum):
    """3GPP 27.007 ``<stat>`` of +CREG/+CEREG."""

    NOT_SEARCHING = 0
    HOME = 1
    SEARCHING = 2
    DENIED = 3
    UNKNOWN = 4
    ROAMING = 5

    @property
    def registered(self) -> bool:
        return self in (RegStat.HOME, RegStat.ROAMING)


@dataclass(frozen=True)
class Signal:
    csq: int  # raw 0..31, 99 = unknown
    rssi_dbm: int | None
    ber: int | None


def _fields(line: str) -> list[str]:
    return [f.strip() for f in line.split(":", 1)[1].split(",")] if ":" in line else []


def parse_csq(lines: tuple[str, ...] | list[str]) -> Signal:
    """``+CSQ: <rssi>,<ber>``; rssi 0 = -113 dBm or less, 31 = -51 dBm or more, 99 unknown."""
    for line in lines:
        if line.startswith("+CSQ:"):
            f = _fields(line)
            try:
                csq, ber = int(f[0]), int(f[1])
            except (ValueError, IndexError) as e:
                raise ModemError(f"unreadable signal report {line!r}") from e
            dbm = None if csq == 99 or not 0 <= csq <= 31 else -113 + 2 * csq
            return Signal(csq, dbm, None if ber == 99 else ber)
    raise ModemError("no +CSQ line in the answer")


def parse_creg(lines: tuple[str, ...] | list[str], prefix: str = "+CREG:") -> RegStat:
    """Answer to ``AT+CREG?``/``AT+CEREG?``: ``<n>,<stat>[,<lac>,<ci>...]``. The URC form
    (``<stat>[,"lac","ci"]``) is told apart by its quoted or missing second field."""
    for line in lines:
        if not line.startswith(prefix):
            continue
        f = _fields(line)
        if len(f) >= 2 and f[1].isdigit():
            stat = int(f[1])
            return RegStat(stat) if stat in RegStat._value2member_map_ else RegStat.UNKNOWN
    raise ModemError(f"no {prefix} answer line")


def parse_cpin(lines: tuple[str, ...] | list[str]) -> SimState:
    for line in lines:
        if line.startswith("+CPIN:"):
            v = line.split(":", 1)[1].strip().upper()
            return {
                "READY": SimState.READY,
                "SIM PIN": SimState.PIN,
                "SIM PUK": SimState.PUK,
                "NOT INSERTED": SimState.ABSENT,
            }.get(v, SimState.UNKNOWN)
    return SimState.UNKNOWN


def parse_cops(lines: tuple[str, ...] | list[str]) -> str | None:
    """``+COPS: <mode>[,<format>,"<oper>"[,<act>]]``; None when not registered."""
    for line in lines:
        if line.startswith("+COPS:"):
            m = re.search(r'"([^"]*)"', line)
            return m.group(1) if m else None
    return None


_ICCID = re.compile(r"\b(89\d{16,18}[0-9F]?)\b")


def parse_iccid(lines: tuple[str, ...] | list[str]) -> str | None:
    """``+CCID: 89...``, ``+ICCID: ...``, ``+QCCID: ...`` or a bare number, depending on vendor."""
    for line in lines:
        m = _ICCID.search(line.replace('"', " "))
        if m:
            return m.group(1)
    return None


def parse_imei(lines: tuple[str, ...] | list[str]) -> str | None:
    for line in lines:
        m = re.search(r"\b(\d{15})\b", line)
        if m:
            return m.group(1)
    return None


# -- the modem -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModemStatus:
    sim: SimState
    registration: RegStat
    operator: str | None
    signal: Signal | None
    iccid: str | None = None
    imei: str | None = None

    @property
    def registered(self) -> bool:
        return self.registration.registered


class Modem:
    """Queries and recovery commands over an :class:`AtChannel`."""

    def __init__(self, channel: AtChannel) -> None:
        self.ch = channel
        self._ids: tuple[str | None, str | None] | None = None

    def init(self) -> None:
        """Echo off and numeric errors: fewer bytes to misparse. Safe to repeat."""
        self.ch.command("AT")
        self.ch.command("ATE0")
        try:
            self.ch.command("AT+CMEE=1")
        except ModemCommandError:
            log.info("modem does not support AT+CMEE")

    def sim_state(self) -> SimState:
        try:
            return parse_cpin(self.ch.command("AT+CPIN?", expect="+CPIN:").lines)
        except ModemCommandError as e:
            # CME 10: SIM not inserted; 13: SIM failure
            if e.final.endswith((" 10", "SIM not inserted")):
                return SimState.ABSENT
            return SimState.ERROR

    def registration(self) -> RegStat:
        """The better of circuit (+CREG) and EPS (+CEREG) registration: an LTE-only modem
        reports +CREG 0 while attached on LTE."""
        best = RegStat.UNKNOWN
        for cmd, prefix in (("AT+CEREG?", "+CEREG:"), ("AT+CREG?", "+CREG:")):
            try:
                stat = parse_creg(self.ch.command(cmd, expect=prefix).lines, prefix)
            except (ModemCommandError, ModemError) as e:
                if isinstance(e, ModemTimeout):
                    raise
                continue
            if stat.registered:
                return stat
            if best is RegStat.UNKNOWN:
                best = stat
        return best

    def operator(self) -> str | None:
        return parse_cops(self.ch.command("AT+COPS?", expect="+COPS:", timeout_s=10).lines)

    def signal(self) -> Signal:
        return parse_csq(self.ch.command("AT+CSQ", expect="+CSQ:").lines)

    def iccid(self) -> str | None:
        for cmd, prefix in (("AT+CCID", "+CCID"), ("AT+QCCID", "+QCCID"),
                            ("AT+ICCID", "+ICCID")):
            try:
                r = self.ch.command(cmd, expect=None)
            except ModemCommandError:
                continue
            v = parse_iccid([ln for ln in r.lines if not ln.startswith("+") or
                             ln.startswith(prefix)])
            if v:
                return v
        return None

    def imei(self) -> str | None:
        return parse_imei(self.ch.command("AT+CGSN").lines)

    def identity(self) -> tuple[str | None, str | None]:
        """(ICCID, IMEI), asked once and cached (they change only with a SIM swap)."""
        if self._ids is None:
            self._ids = (self.iccid(), self.imei())
        return self._ids

    def status(self) -> ModemStatus:
        sim = self.sim_state()
        if sim is not SimState.READY:
            return ModemStatus(sim, RegStat.UNKNOWN, None, None)
        reg = self.registration()
        op = self.operator() if reg.registered else None
        iccid, imei = self.identity()
        return ModemStatus(sim, reg, op, self.signal(), iccid, imei)

    def reregister(self) -> None:
        """Detach from the network and let the modem pick the operator again."""
        self.ch.command("AT+COPS=2", timeout_s=30)
        self.ch.command("AT+COPS=0", timeout_s=60)

    def radio_cycle(self) -> None:
        """Airplane mode and back: a full network re-attach without losing the USB device."""
        self.ch.command("AT+CFUN=0", timeout_s=30)
        self.ch.command("AT+CFUN=1", timeout_s=30)


# -- power ---------------------------------------------------------------------------------


class PowerSwitch(Protocol):
    def power_cycle(self, off_s: float) -> None: ...


class GpioPowerSwitch:
    """Cuts the modem's supply (or holds its reset/PWRKEY line) through a GPIO pin.

    ``pin_factory`` is the gpiozero pin factory the wiring chose (lgpio on a Pi 5, mock in the
    rig), passed explicitly rather than read from gpiozero's global. ``active_high`` True means
    driving the pin high cuts power.
    """

    def __init__(self, pin: int, clock: Clock, pin_factory: Any,
                 active_high: bool = True) -> None:
        from gpiozero import OutputDevice  # type: ignore[import-untyped]

        self._clock = clock
        self._dev = OutputDevice(pin, active_high=active_high, initial_value=False,
                                 pin_factory=pin_factory)

    def power_cycle(self, off_s: float) -> None:
        self._dev.on()
        try:
            self._clock.sleep(off_s)
        finally:
            self._dev.off()

    def close(self) -> None:
        self._dev.close()


# -- settings ---------------------------------------------------------------------------------


def _no_pin_if_negative(pin: int) -> int | None:
    return None if pin < 0 else pin


@dataclass(frozen=True)
class ModemSettings:
    """Config section ``[modem]``: whether a modem is fitted, its port and the recovery ladder.

    ``power_gpio`` is ``None`` (``-1`` in the config file) when no pin cuts modem power.
    """

    enabled: bool = setting(False, doc="A cellular modem is fitted and Vigil supervises it "
                            "(the data session stays with ModemManager/NetworkManager).")
    port: str = setting("/dev/ttyUSB2", doc="AT command port or pyserial URL.")
    baud: int = setting(115200, min=9600, max=4000000)
    power_gpio: int | None = setting(-1, min=-1, max=27, convert=_no_pin_if_negative,
                                     doc="BCM pin that cuts modem power; -1 = none (no power "
                                     "cycling).")
    power_active_high: bool = setting(True)
    power_off_s: float = setting(5.0, min=0.5, max=60.0)
    poll_interval_s: float = setting(30.0, min=5.0, max=3600.0)
    command_timeout_s: float = setting(3.0, min=0.5, max=60.0)
    reregister_after_s: float = setting(120.0, min=30.0, max=86400.0)
    radio_cycle_after_s: float = setting(300.0, min=30.0, max=86400.0)
    power_cycle_after_s: float = setting(900.0, min=30.0, max=86400.0)
    power_cycle_repeat_s: float = setting(3600.0, min=300.0, max=86400.0)
    unresponsive_polls_to_power_cycle: int = setting(3, min=1, max=100)
    boot_wait_s: float = setting(30.0, min=1.0, max=300.0)


# -- wiring ----------------------------------------------------------------------------------


def open_modem(settings: ModemSettings, clock: Clock) -> Modem:
    """The real modem on ``settings.port`` (a device path or a pyserial URL)."""
    try:
        # Short read timeout so the channel keeps its own deadlines.
        port = open_serial(settings.port, settings.baud, read_timeout_s=0.05,
                           write_timeout_s=2.0)
    except SerialError as e:
        raise ModemError(f"cannot open modem port {settings.port}: {e}") from e
    return Modem(AtChannel(port, clock, settings.command_timeout_s))


def power_switch_for(settings: ModemSettings, clock: Clock,
                     pin_factory: Callable[[], Any]) -> PowerSwitch | None:
    """A GPIO power switch when ``power_gpio`` is set, else None (no power cycling).

    ``pin_factory`` is called only when a pin is needed (it may open /dev/gpiochip*)."""
    if settings.power_gpio is None:
        return None
    return GpioPowerSwitch(settings.power_gpio, clock, pin_factory(), settings.power_active_high)
