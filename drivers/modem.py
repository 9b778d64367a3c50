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
* parsers (pure, in :mod:`drivers.at_parse`, re-exported here): final result codes, URC
  forms, :func:`parse_reg` (+CREG/+CGREG/+CEREG/+C5GREG), :func:`parse_cpin`,
  :func:`parse_iccid`, :func:`parse_csq`, :func:`parse_cesq`, :func:`parse_cops`,
  :func:`parse_imei`.
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
from typing import Any, Protocol

from drivers.at_parse import (
    URC_PREFIXES,
    AtParseError,
    ModemError,
    Registration,
    RegStat,
    Signal,
    SimState,
    final_result,
    is_urc,
    parse_cesq,
    parse_cops,
    parse_cpin,
    parse_csq,
    parse_iccid,
    parse_imei,
    parse_reg,
    prefix_of,
    sim_state_from_error,
)
from drivers.clock import Clock
from drivers.config_keys import setting
from drivers.errors import DeviceTimeout
from drivers.resource import Closing
from drivers.serial_port import SerialError, SerialPort, open_serial

log = logging.getLogger(__name__)

__all__ = [
    "URC_PREFIXES",
    "AtChannel",
    "AtParseError",
    "AtResponse",
    "Modem",
    "ModemCommandError",
    "ModemError",
    "ModemStatus",
    "ModemTimeout",
    "ModemUnreadable",
    "RegStat",
    "Registration",
    "Signal",
    "SimState",
    "parse_cesq",
    "parse_cops",
    "parse_cpin",
    "parse_creg",
    "parse_csq",
    "parse_iccid",
    "parse_imei",
    "parse_reg",
]


def parse_creg(lines: tuple[str, ...] | list[str], prefix: str = "+CREG:") -> RegStat:
    """The ``<stat>`` of the solicited answer among ``lines`` (see :func:`parse_reg`)."""
    return parse_reg(lines, prefix).stat


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
_PRINTABLE = re.compile(r"^[\x20-\x7e]+$")


class ModemUnreadable(ModemError):
    """The modem answered, but with no final result code this driver knows: it is alive (so no
    power cycle), the command failed."""


@dataclass(frozen=True)
class AtResponse:
    command: str
    lines: tuple[str, ...]  # information lines, echo, URCs and noise removed
    final: str
    unexpected: tuple[str, ...] = ()  # lines neither the expected answer nor a URC


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
        # Nothing was asked: a line of URC form (or a stray NO CARRIER) is unsolicited.
        if is_urc(line) or prefix_of(line) is not None or final_result(line) is False:
            self._urc(line)
        else:
            self.noise_lines += 1

    def _urc(self, line: str) -> None:
        self.urcs.append(line)
        log.debug("modem URC", extra={"urc": line})

    def command(
        self, cmd: str, *, expect: str | None = None, timeout_s: float | None = None
    ) -> AtResponse:
        """Send ``cmd`` and wait for its final result code.

        ``expect`` is the prefix of the information line this command answers with (e.g.
        ``+CSQ:``); lines of URC form (:func:`drivers.at_parse.is_urc`) go to :attr:`urcs`,
        other lines to :attr:`AtResponse.unexpected`. Any final result code ends the command
        (:func:`drivers.at_parse.final_result`, vendor codes included). Raises
        :class:`ModemCommandError` on a failure code, :class:`ModemUnreadable` when the modem
        answered but sent no known final code, and :class:`ModemTimeout` when it said nothing
        within ``timeout_s``.
        """
        with self._lock:
            self._drain_pending()
            try:
                self._port.write(cmd.encode("ascii") + b"\r")
            except OSError as e:
                raise ModemError(f"cannot write to modem: {e}") from e
            deadline = self._clock.monotonic() + (timeout_s or self.timeout_s)
            lines: list[str] = []
            other: list[str] = []
            while True:
                try:
                    line = self._next_line(deadline)
                except OSError as e:
                    raise ModemError(f"cannot read from modem: {e}") from e
                if line is None:
                    if lines or other:
                        # Answered, but never finished with a code we know: alive, not hung.
                        raise ModemUnreadable(
                            f"no known final result code after {cmd!r}: {[*lines, *other]!r}")
                    raise ModemTimeout(f"modem did not answer {cmd!r} within deadline")
                if line.upper() == cmd.upper():
                    continue  # echo (ATE1)
                done = final_result(line)
                if done is not None:
                    # URCs that came in the same read after the final code belong to no one.
                    self._drain_pending()
                    if done:
                        return AtResponse(cmd, tuple(lines), line, tuple(other))
                    raise ModemCommandError(cmd, line)
                if is_urc(line, expect):
                    self._urc(line)
                elif expect is None or line.startswith(expect):
                    lines.append(line)
                else:
                    other.append(line)


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

    #: Registration queries, best first: EPS (LTE), 5GS, packet (GPRS/UMTS), circuit. An
    #: LTE-only modem reports +CREG 0 while attached on LTE; a modem without 5G answers ERROR.
    REG_QUERIES = (("AT+CEREG?", "+CEREG:"), ("AT+C5GREG?", "+C5GREG:"),
                   ("AT+CGREG?", "+CGREG:"), ("AT+CREG?", "+CREG:"))

    def __init__(self, channel: AtChannel) -> None:
        self.ch = channel
        self._ids: tuple[str | None, str | None] | None = None
        self.last_registration: Registration | None = None

    def init(self) -> None:
        """Echo off and numeric errors: fewer bytes to misparse. Safe to repeat."""
        self.ch.command("AT")
        self.ch.command("ATE0")
        try:
            self.ch.command("AT+CMEE=1")
        except ModemCommandError:
            log.info("modem does not support AT+CMEE")

    def sim_state(self) -> SimState:
        """27.007 +CPIN; a ``+CME ERROR`` answer says the state too (10: not inserted)."""
        try:
            return parse_cpin(self.ch.command("AT+CPIN?", expect="+CPIN:").lines)
        except ModemCommandError as e:
            return sim_state_from_error(e.final)

    def registration(self) -> RegStat:
        """The best registration over :attr:`REG_QUERIES`: the first that is registered, else
        the first readable answer. Raises :class:`AtParseError` when no query gave a readable
        answer (an unknown reply is an error, not "not registered")."""
        best: Registration | None = None
        failures: list[str] = []
        for cmd, prefix in self.REG_QUERIES:
            try:
                reg = parse_reg(self.ch.command(cmd, expect=prefix).lines, prefix)
            except ModemTimeout:
                raise
            except ModemError as e:
                failures.append(str(e))
                continue
            if reg.stat.registered:
                best = reg
                break
            best = best or reg
        if best is None:
            raise AtParseError(f"no readable registration answer: {failures}")
        self.last_registration = best
        return best.stat

    def operator(self) -> str | None:
        return parse_cops(self.ch.command("AT+COPS?", expect="+COPS:", timeout_s=10).lines)

    def signal(self) -> Signal:
        """+CSQ; when it says "unknown" (many LTE modules do), +CESQ's RSRP/RSRQ instead."""
        sig = parse_csq(self.ch.command("AT+CSQ", expect="+CSQ:").lines)
        if sig.rssi_dbm is not None:
            return sig
        try:
            return parse_cesq(self.ch.command("AT+CESQ", expect="+CESQ:").lines)
        except ModemTimeout:
            raise
        except ModemError:
            return sig

    def iccid(self) -> str | None:
        for cmd, prefix in (("AT+CCID", None), ("AT+QCCID", None), ("AT+ICCID", None),
                            ("AT^ICCID?", "^ICCID:"), ("AT#CCID", None)):
            try:
                r = self.ch.command(cmd, expect=prefix)
            except ModemTimeout:
                raise
            except ModemError:
                continue
            v = parse_iccid(r.lines)
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
        if not sim.usable:
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
