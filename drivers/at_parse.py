"""AT response parsing, pure: no port, no clock. Lines in, typed values (or errors) out.

Written against 3GPP TS 27.007 (general and packet-domain commands), TS 27.005 (SMS) and the
forms the common module families send in practice: Quectel, Sierra Wireless, Telit, u-blox,
SIMCom and Huawei (see the table in docs/drivers.md). :mod:`drivers.modem` uses these to frame
commands and read answers; everything here is testable from a list of strings.

* :func:`final_result` -- is this line a final result code, and is it a success?
* :func:`is_urc` -- is this line unsolicited (by its form), given what the command expects?
* :func:`parse_reg` -- +CREG / +CGREG / +CEREG / +C5GREG, solicited and unsolicited forms.
* :func:`parse_cpin`, :func:`parse_iccid`, :func:`parse_csq`, :func:`parse_cesq`,
  :func:`parse_cops`, :func:`parse_imei`.

A reply that cannot be read raises :class:`AtParseError`: an unknown answer is an error, never
silently "not registered" or "unknown".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from drivers.errors import DriverError


class ModemError(DriverError):
    """Root of the modem driver's errors (:mod:`drivers.modem` re-exports it)."""


class AtParseError(ModemError, ValueError):
    """A modem answer that does not have the form the command's specification gives it."""


# -- final result codes ----------------------------------------------------------------------

#: Final result codes that end a command with success. ``CONNECT`` (ATD, data mode) is left out
#: on purpose: Vigil never dials, and on a command port CONNECT would hand the port to PPP.
_FINAL_SUCCESS = frozenset({"OK"})
#: V.250 / 27.007 failure codes, and vendor ones that end a command the same way:
#: Huawei ``COMMAND NOT SUPPORT`` / ``TOO MANY PARAMETERS``, SIMCom/Telit ``NOT SUPPORT``,
#: Quectel ``ABORTED`` (a command cut short by a new character). ``NO CARRIER`` ends any
#: command (Sierra, Telit and SIMCom send it after non-dial commands too), not only ATD.
_FINAL_FAILURE = frozenset({
    "ERROR", "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE", "COMMAND NOT SUPPORT",
    "TOO MANY PARAMETERS", "NOT SUPPORT", "ABORTED",
})
#: ``+CME ERROR: <err>`` (27.007 9.2), ``+CMS ERROR: <err>`` (27.005 3.2.5), u-blox
#: ``+EXT ERROR: <n>``, Sierra/Qualcomm ``MODEM ERROR: <n>``, Telit ``#... ERROR: <n>``;
#: ``<err>`` is numeric (``AT+CMEE=1``) or verbose (``AT+CMEE=2``).
_FINAL_FAILURE_FORM = re.compile(r"^[+#$^]?[A-Z][A-Z ]*ERROR\s*:.*$")


def final_result(line: str) -> bool | None:
    """True: a success final result code; False: a failure one; None: not a final code."""
    if line in _FINAL_SUCCESS:
        return True
    if line in _FINAL_FAILURE or _FINAL_FAILURE_FORM.match(line):
        return False
    return None


# -- unsolicited result codes ------------------------------------------------------------------

#: Bare-word URCs (no ``prefix:`` form): V.250 ``RING``, boot banners of each family.
_URC_WORDS = frozenset({
    "RING", "RDY", "NO CARRIER", "POWERED DOWN", "NORMAL POWER DOWN", "SMS DONE", "PB DONE",
    "SMS READY", "CALL READY", "^SYSSTART", "+PACSP0", "+PACSP1", "+PACSP", "+SIM READY",
    "START", "^BOOT",
})
#: ``+NAME:`` / ``^NAME:`` / ``#NAME:`` / ``*NAME:`` -- the form every URC with data has.
_URC_FORM = re.compile(r"^([+^#*%$][A-Z0-9_]+):")
#: Prefixes that are only ever unsolicited on an AT port (27.007, 27.005 and vendors):
#: they are set aside even during a command that expects no particular prefix.
URC_PREFIXES = (
    "+CREG:", "+CGREG:", "+CEREG:", "+C5GREG:", "+CMTI:", "+CMT:", "+CDSI:", "+CDS:",
    "+CBM:", "+CLIP:", "+CRING:", "+CCWA:", "+CIEV:", "+CUSD:", "+CGEV:", "+CSSI:", "+CSSU:",
    "+CTZV:", "+CTZE:", "+CTZEU:", "+CPIN:", "+CFUN:", "+QIND:", "+QUSIM:", "+QIURC:",
    "+QSIMSTAT:", "+UUPSDA:", "+UUSORD:", "+UUSOCL:", "+UUSIMSTAT:", "#QSS:", "+PSUTTZ:",
    "*PSUTTZ:", "DST:", "^MODE:", "^RSSI:", "^HCSQ:", "^SIMST:", "^SRVST:", "^NDISSTAT:",
    "+CIPRXGET:", "+STIN:", "+SIMCARD:", "+CPINR:",
)
_REG_PREFIXES = ("+CREG:", "+CGREG:", "+CEREG:", "+C5GREG:")


def prefix_of(line: str) -> str | None:
    """``+CREG:`` for ``+CREG: 1,5``; None for a line without the ``+NAME:`` form."""
    m = _URC_FORM.match(line)
    return m.group(0) if m else None


def is_urc(line: str, expect: str | None = None) -> bool:
    """Is ``line`` unsolicited, for a command whose answer lines start with ``expect``?

    A line with the expected prefix is still a URC when its *form* is the unsolicited one: a
    ``+CREG: 1,"1A2B","01C3D4E",7`` arriving while ``AT+CREG?`` runs is not the answer.
    """
    if line in _URC_WORDS:
        return True
    prefix = prefix_of(line)
    if prefix is None:
        return line.startswith(URC_PREFIXES)
    if expect is not None and prefix == expect:
        return prefix in _REG_PREFIXES and not _reg_is_answer(_fields(line))
    return expect is not None or prefix in URC_PREFIXES


# -- fields ----------------------------------------------------------------------------------


def _fields(line: str) -> list[str]:
    """The comma-separated values after ``prefix:``, quotes kept (they tell forms apart)."""
    if ":" not in line:
        return []
    body = line.split(":", 1)[1].strip()
    if not body:
        return []
    out: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in body:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return out


def _unquote(v: str) -> str:
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] == '"' else v


def _small_int(v: str, hi: int) -> int | None:
    return int(v) if v.isdigit() and len(v) <= 2 and int(v) <= hi else None


def _lines_with(lines: Sequence[str], prefix: str) -> list[str]:
    return [ln for ln in lines if ln.startswith(prefix)]


# -- registration ----------------------------------------------------------------------------


class RegStat(IntEnum):
    """3GPP 27.007 ``<stat>`` of +CREG / +CGREG / +CEREG / +C5GREG (7.2, 10.1.20-22)."""

    NOT_SEARCHING = 0
    HOME = 1
    SEARCHING = 2
    DENIED = 3
    UNKNOWN = 4
    ROAMING = 5
    SMS_ONLY_HOME = 6
    SMS_ONLY_ROAMING = 7
    EMERGENCY_ONLY = 8
    CSFB_NOT_PREFERRED_HOME = 9
    CSFB_NOT_PREFERRED_ROAMING = 10
    RLOS_ONLY = 11  # attached for access to restricted local operator services

    @property
    def registered(self) -> bool:
        """Registered with data service (SMS-only and emergency-only are not)."""
        return self in _REGISTERED

    @property
    def roaming(self) -> bool:
        return self in (RegStat.ROAMING, RegStat.SMS_ONLY_ROAMING,
                        RegStat.CSFB_NOT_PREFERRED_ROAMING)


_REGISTERED = frozenset({RegStat.HOME, RegStat.ROAMING, RegStat.CSFB_NOT_PREFERRED_HOME,
                         RegStat.CSFB_NOT_PREFERRED_ROAMING})


@dataclass(frozen=True)
class Registration:
    """One registration report: ``area`` is the LAC/TAC and ``cell`` the cell id (hex text),
    ``act`` the access technology (27.007 ``<AcT>``: 0 GSM, 2 UTRAN, 7 E-UTRAN, 9 NB-IoT,
    13 NR), each None when the report did not carry it."""

    stat: RegStat
    area: str | None = None
    cell: str | None = None
    act: int | None = None
    unsolicited: bool = False


def _reg_is_answer(f: list[str]) -> bool:
    """Solicited (``<n>,<stat>[,<lac>,<ci>[,<AcT>...]]``) vs URC (``<stat>[,<lac>,<ci>...]``).

    In the answer the second field is an unquoted ``<stat>`` (0..11) and, when a third follows,
    it is the quoted or hexadecimal area code; in the URC the second field is the area code."""
    if len(f) < 2 or _small_int(f[0], 5) is None or _small_int(f[1], 11) is None:
        return False
    if len(f) == 2:
        return True
    # 3 fields is the URC <stat>,<lac>,<ci>; 4+ with <lac> where <stat> would be is a URC too
    return len(f) != 3 and (f[2].startswith('"') or f[2] == "" or not f[2].isdigit()
                            or len(f[2]) > 2)


def parse_reg_line(line: str) -> Registration:
    """One +CREG/+CGREG/+CEREG/+C5GREG line, either form."""
    f = _fields(line)
    answer = _reg_is_answer(f)
    rest = f[1:] if answer else f
    if not rest or not rest[0].isdigit():
        raise AtParseError(f"unreadable registration report {line!r}")
    stat = int(rest[0])
    if stat not in RegStat._value2member_map_:
        raise AtParseError(f"registration status {stat} is not a 27.007 <stat> in {line!r}")
    area = _unquote(rest[1]) or None if len(rest) > 1 else None
    cell = _unquote(rest[2]) or None if len(rest) > 2 else None
    act = int(rest[3]) if len(rest) > 3 and rest[3].isdigit() else None
    return Registration(RegStat(stat), area, cell, act, unsolicited=not answer)


def parse_reg(lines: Sequence[str], prefix: str = "+CREG:") -> Registration:
    """The solicited answer to ``AT+CREG?`` (or +CGREG / +CEREG / +C5GREG) among ``lines``;
    URC-form lines are skipped. Raises :class:`AtParseError` when there is none."""
    for line in _lines_with(lines, prefix):
        if _reg_is_answer(_fields(line)):
            return parse_reg_line(line)
    raise AtParseError(f"no {prefix} answer line in {list(lines)!r}")


# -- SIM -------------------------------------------------------------------------------------


class SimState(StrEnum):
    READY = "ready"
    PIN = "pin_required"
    PUK = "puk_required"
    PIN2 = "pin2_required"  # the SIM works; only PIN2-protected files are locked
    PUK2 = "puk2_required"
    PHONE_LOCKED = "phone_locked"  # PH-SIM / PH-FSIM: the device is locked to a SIM
    NETWORK_LOCKED = "network_locked"  # PH-NET / NETSUB / SP / CORP personalisation
    ABSENT = "absent"
    NOT_READY = "not_ready"  # SIM busy (boot, refresh)
    ERROR = "error"
    UNKNOWN = "unknown"

    @property
    def usable(self) -> bool:
        return self in (SimState.READY, SimState.PIN2, SimState.PUK2)


_CPIN = {
    "READY": SimState.READY, "SIM PIN": SimState.PIN, "SIM PUK": SimState.PUK,
    "SIM PIN2": SimState.PIN2, "SIM PUK2": SimState.PUK2,
    "PH-SIM PIN": SimState.PHONE_LOCKED, "PH-SIM PUK": SimState.PHONE_LOCKED,
    "PH-FSIM PIN": SimState.PHONE_LOCKED, "PH-FSIM PUK": SimState.PHONE_LOCKED,
    "NOT INSERTED": SimState.ABSENT, "SIM REMOVED": SimState.ABSENT,
    "NO SIM": SimState.ABSENT, "NOT READY": SimState.NOT_READY, "SIM BUSY": SimState.NOT_READY,
}
_CPIN_LOCKS = ("PH-NET", "PH-NETSUB", "PH-SP", "PH-CORP")


def parse_cpin(lines: Sequence[str]) -> SimState:
    """``+CPIN: <code>`` (27.007 8.3), quoted or not."""
    for line in _lines_with(lines, "+CPIN:"):
        v = " ".join(_unquote(line.split(":", 1)[1].strip()).upper().split())
        if v in _CPIN:
            return _CPIN[v]
        if v.startswith(_CPIN_LOCKS):
            return SimState.NETWORK_LOCKED
        raise AtParseError(f"unknown SIM state {line!r}")
    raise AtParseError(f"no +CPIN line in {list(lines)!r}")


#: ``+CME ERROR`` codes (27.007 9.2.1), numeric and verbose, that say what state the SIM is in.
_CME_SIM = {
    "10": SimState.ABSENT, "SIM NOT INSERTED": SimState.ABSENT,
    "11": SimState.PIN, "SIM PIN REQUIRED": SimState.PIN,
    "12": SimState.PUK, "SIM PUK REQUIRED": SimState.PUK,
    "14": SimState.NOT_READY, "SIM BUSY": SimState.NOT_READY,
    "5": SimState.PHONE_LOCKED, "PH-SIM PIN REQUIRED": SimState.PHONE_LOCKED,
    "40": SimState.NETWORK_LOCKED, "NETWORK PERSONALIZATION PIN REQUIRED":
        SimState.NETWORK_LOCKED,
}


def sim_state_from_error(final: str) -> SimState:
    """The SIM state a failed ``AT+CPIN?`` reports (``+CME ERROR: 10``, ``...: SIM busy``)."""
    code = final.split(":", 1)[1].strip().upper() if ":" in final else ""
    return _CME_SIM.get(code, SimState.ERROR)


# -- ICCID -----------------------------------------------------------------------------------

_ICCID_PREFIX = re.compile(r"^(?:[+^#$][A-Z]*(?:CCID|ICCID)\s*:|\+CRSM:\s*\d+\s*,\s*\d+\s*,)",
                           re.IGNORECASE)
_ICCID_BODY = re.compile(r"^[0-9A-Fa-f]{18,20}$")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _swap_pairs(s: str) -> str:
    return "".join(s[i + 1] + s[i] for i in range(0, len(s) - 1, 2)) + s[len(s) & ~1:]


def normalize_iccid(raw: str) -> str | None:
    """An ICCID from any common encoding: quoted, ``F``-padded, nibble-swapped (raw EF_ICCID as
    Huawei ``^ICCID`` and ``+CRSM`` return it). Decimal ICCIDs must pass the Luhn check
    (ITU-T E.118); ICCIDs with hexadecimal issuer digits (China Mobile ``898602B...``) cannot be
    checked and are accepted as they are. None when nothing here is an ICCID."""
    v = _unquote(raw.strip()).strip().upper()
    if not _ICCID_BODY.match(v):
        return None
    for cand in (v, _swap_pairs(v)):
        c = cand.rstrip("F")
        if not c.startswith("89") or not 18 <= len(c) <= 20:
            continue
        if c.isdigit():
            if luhn_ok(c):
                return c
        elif "F" not in c:
            return c
    return None


def parse_iccid(lines: Sequence[str]) -> str | None:
    """``+CCID:``, ``+ICCID:``, ``+QCCID:``, ``^ICCID:``, ``#CCID:``, ``+CRSM: 144,0,"..."`` or a
    bare number, depending on the vendor."""
    for line in lines:
        body = _ICCID_PREFIX.sub("", line.strip()).strip()
        if body == line.strip() and line.strip()[:1] in "+^#$":
            continue  # another command's answer or a URC
        v = normalize_iccid(body)
        if v:
            return v
    return None


def parse_imei(lines: Sequence[str]) -> str | None:
    """``AT+CGSN`` answers a bare IMEI (some vendors ``+CGSN: "..."``); Luhn-checked."""
    for line in lines:
        m = re.search(r"\b(\d{15})\b", line)
        if m and luhn_ok(m.group(1)):
            return m.group(1)
    return None


# -- operator and signal -----------------------------------------------------------------------


def parse_cops(lines: Sequence[str]) -> str | None:
    """``+COPS: <mode>[,<format>,"<oper>"[,<AcT>]]``; None when not registered."""
    for line in _lines_with(lines, "+COPS:"):
        m = re.search(r'"([^"]*)"', line)
        return m.group(1) or None if m else None
    return None


@dataclass(frozen=True)
class Signal:
    """Signal as the modem reports it. ``csq`` raw 0..31 (99 unknown); LTE/NR modems often
    report 99 there and the real figures in +CESQ: ``rsrp_dbm`` (-140..-44) and ``rsrq_db``."""

    csq: int
    rssi_dbm: int | None
    ber: int | None
    rsrp_dbm: int | None = None
    rsrq_db: float | None = None

    @property
    def dbm(self) -> int | None:
        """The best single figure: RSSI, else RSRP."""
        return self.rssi_dbm if self.rssi_dbm is not None else self.rsrp_dbm


def parse_csq(lines: Sequence[str]) -> Signal:
    """``+CSQ: <rssi>,<ber>`` (27.007 8.5); rssi 0 = -113 dBm or less, 31 = -51 dBm or more."""
    for line in _lines_with(lines, "+CSQ:"):
        f = _fields(line)
        try:
            csq, ber = int(f[0]), int(f[1])
        except (ValueError, IndexError) as e:
            raise AtParseError(f"unreadable signal report {line!r}") from e
        if not (0 <= csq <= 31 or csq == 99) or not (0 <= ber <= 7 or ber == 99):
            raise AtParseError(f"signal report out of range {line!r}")
        return Signal(csq, None if csq == 99 else -113 + 2 * csq, None if ber == 99 else ber)
    raise AtParseError("no +CSQ line in the answer")


def parse_cesq(lines: Sequence[str]) -> Signal:
    """``+CESQ: <rxlev>,<ber>,<rscp>,<ecno>,<rsrq>,<rsrp>`` (27.007 8.69): rsrp 0..97 is
    -140..-44 dBm, rsrq 0..34 is -19.5..-3 dB, 255 = not known / not this technology."""
    for line in _lines_with(lines, "+CESQ:"):
        try:
            v = [int(x) for x in _fields(line)]
            rxlev, ber, rsrq, rsrp = v[0], v[1], v[4], v[5]
        except (ValueError, IndexError) as e:
            raise AtParseError(f"unreadable +CESQ report {line!r}") from e
        rssi = -111 + rxlev if 0 <= rxlev <= 63 else None
        return Signal(
            99, rssi, ber if 0 <= ber <= 7 else None,
            rsrp_dbm=-141 + rsrp if 0 < rsrp <= 97 else (-140 if rsrp == 0 else None),
            rsrq_db=-20.0 + rsrq / 2 if 0 < rsrq <= 34 else (-19.5 if rsrq == 0 else None),
        )
    raise AtParseError("no +CESQ line in the answer")
