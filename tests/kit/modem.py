"""A modem simulator for tests: :class:`FakeModem` speaks AT on the master side of a
pseudo-terminal (the driver under test opens the slave like a real port), and
:class:`FakePowerSwitch` records power cycles. Test doubles only: the simulation rig has no modem.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.resource import Closing


class FakePowerSwitch:
    """Records power cycles and calls ``on_cycle`` (e.g. :meth:`FakeModem.power_cycle`)."""

    def __init__(self, on_cycle: Callable[[], None] | None = None) -> None:
        self.cycles: list[float] = []
        self._on_cycle = on_cycle

    def power_cycle(self, off_s: float) -> None:
        self.cycles.append(off_s)
        if self._on_cycle is not None:
            self._on_cycle()


@dataclass
class FakeModemState:
    echo: bool = True
    sim: str = "READY"  # or "SIM PIN", "NOT INSERTED"
    stat: int = 1  # +CREG/+CEREG stat
    csq: int = 20
    ber: int = 99
    operator: str = "Vigil Test Net"
    radio_on: bool = True
    iccid: str = "8944110012345678901"
    imei: str = "356938035643809"
    silent: bool = False  # stops answering (hung firmware); a power cycle cures it
    garbage: bool = False  # line noise before every answer
    lte_only: bool = False  # +CREG reports 0 while +CEREG is registered
    reregister_cures: bool = False  # AT+COPS=0 brings registration back
    radio_cycle_cures: bool = False
    power_cycle_cures: bool = True
    #: Transcripts: a command (upper case) -> the raw bytes a real module sends back for it
    #: (after the echo), replayed verbatim instead of the simulated answer.
    script: dict[str, bytes] = field(default_factory=dict)


class FakeModem(Closing):
    """A modem simulator speaking AT on the master side of a pseudo-terminal.

    ``FakeModem()`` opens a pty; :attr:`port_name` is the slave device to give to
    :func:`open_serial`. Its :attr:`state` is mutable from tests (drop registration, weaken the
    signal, go silent, emit noise), :meth:`inject` sends an unsolicited line, and
    :attr:`received` keeps every command in order.
    """

    def __init__(self, state: FakeModemState | None = None, seed: int = 0) -> None:
        self.state = state or FakeModemState()
        self._rng = random.Random(seed)
        self.master, self._slave = os.openpty()
        self.port_name = os.ttyname(self._slave)
        self.received: list[str] = []
        self.power_cycles = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="fake-modem", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def inject(self, line: str) -> None:
        self._write(f"\r\n{line}\r\n".encode())

    def power_cycle(self) -> None:
        with self._lock:
            self.power_cycles += 1
            st = self.state
            st.silent = False
            st.echo = True
            st.radio_on = True
            if st.power_cycle_cures:
                st.stat = 1
        self.inject("RDY")

    def _write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            os.write(self.master, data)

    def _serve(self) -> None:
        buf = bytearray()
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.master], [], [], 0.05)
            except (OSError, ValueError):
                return
            if not ready:
                continue
            try:
                data = os.read(self.master, 1024)
            except OSError:
                return
            buf += data
            while (i := buf.find(b"\r")) >= 0:
                cmd = bytes(buf[:i]).decode("ascii", errors="replace").strip()
                del buf[: i + 1]
                if cmd:
                    self._handle(cmd)

    def _handle(self, cmd: str) -> None:
        with self._lock:
            self.received.append(cmd)
            st = self.state
            if st.silent:
                return
            out = bytearray()
            if st.echo:
                out += cmd.encode() + b"\r"
            if st.garbage:
                out += bytes(self._rng.randrange(128, 256) for _ in range(12)) + b"\r\n"
                out += b"\x00\x07~~\r\n"
            if cmd.upper() in st.script:
                self._write(bytes(out) + st.script[cmd.upper()])
                return
            lines, ok = self._answer(cmd.upper(), st)
            for ln in lines:
                out += f"\r\n{ln}\r\n".encode()
            out += b"\r\nOK\r\n" if ok is True else f"\r\n{ok}\r\n".encode()
        self._write(bytes(out))

    def _answer(self, cmd: str, st: FakeModemState) -> tuple[list[str], bool | str]:
        stat = st.stat if st.radio_on else 0
        if cmd in ("AT", "AT+CMEE=1"):
            return [], True
        if cmd in ("ATE0", "ATE1"):
            st.echo = cmd == "ATE1"
            return [], True
        if cmd == "AT+CPIN?":
            if st.sim == "NOT INSERTED":
                return [], "+CME ERROR: 10"
            return [f"+CPIN: {st.sim}"], True
        if cmd == "AT+CREG?":
            return [f"+CREG: 0,{0 if st.lte_only else stat}"], True
        if cmd == "AT+CEREG?":
            return [f'+CEREG: 2,{stat},"1A2B","01C3D4E",7'], True
        if cmd == "AT+CSQ":
            return [f"+CSQ: {st.csq if st.radio_on else 99},{st.ber}"], True
        if cmd == "AT+COPS?":
            if stat in (1, 5):
                return [f'+COPS: 0,0,"{st.operator}",7'], True
            return ["+COPS: 0"], True
        if cmd == "AT+COPS=2":
            st.stat = 0
            return [], True
        if cmd == "AT+COPS=0":
            st.stat = 1 if st.reregister_cures else 2
            return [], True
        if cmd == "AT+CFUN=0":
            st.radio_on = False
            return [], True
        if cmd == "AT+CFUN=1":
            st.radio_on = True
            if st.radio_cycle_cures:
                st.stat = 1
            return [], True
        if cmd == "AT+CCID":
            return [f"+CCID: {st.iccid}"], True
        if cmd == "AT+CGSN":
            return [st.imei], True
        return [], "ERROR"
