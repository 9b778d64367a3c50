"""The pure AT parsers (drivers.at_parse) against the forms in 3GPP TS 27.007 / 27.005 and the
vendors' AT manuals (Quectel, Sierra Wireless, Telit, u-blox, SIMCom, Huawei). Transcripts are
written here from those documents, line by line."""

from __future__ import annotations

import pytest

from drivers.at_parse import (
    AtParseError,
    RegStat,
    SimState,
    final_result,
    is_urc,
    normalize_iccid,
    parse_cesq,
    parse_cpin,
    parse_csq,
    parse_iccid,
    parse_reg,
    parse_reg_line,
    sim_state_from_error,
)
from drivers.modem import ModemError


@pytest.mark.parametrize("line,ok", [
    ("OK", True), ("ERROR", False), ("+CME ERROR: 10", False),
    ("+CME ERROR: SIM not inserted", False), ("+CMS ERROR: 500", False),
    ("COMMAND NOT SUPPORT", False),  # Huawei
    ("TOO MANY PARAMETERS", False),  # Huawei
    ("MODEM ERROR: 3", False),  # Sierra Wireless / Qualcomm
    ("+EXT ERROR: 20", False),  # u-blox
    ("NO CARRIER", False), ("BUSY", False), ("NO ANSWER", False), ("NO DIALTONE", False),
    ("ABORTED", False),  # Quectel
    ("+CSQ: 20,99", None), ("RING", None), ("+CEER: No ERROR cause", None), ("OKAY", None),
])
def test_final_result_codes(line: str, ok: bool | None) -> None:
    assert final_result(line) is ok


@pytest.mark.parametrize("line,expect,urc", [
    ("+CIEV: 2,3", None, True), ("+CRING: VOICE", None, True),
    ('+CLIP: "+441234567",145,,,,0', None, True), ("+CMTI: \"SM\",3", None, True),
    ("^RSSI: 18", None, True), ("^HCSQ: \"LTE\",45,30,120,20", None, True),
    ("RING", "+CSQ:", True), ("+QIND: SMS DONE", "+CSQ:", True),
    ("+C5GREG: 1", "+CREG:", True), ('+C5GREG: 1,"00A1B2","000000123",11', None, True),
    ("+CSQ: 20,99", "+CSQ:", False), ("356938035643809", None, False),
    ('+CREG: 1,"1A2B","01C3D4E",7', "+CREG:", True),  # URC form during AT+CREG?
    ('+CEREG: 5,"1A2B","01C3D4E",7', "+CEREG:", True),
    ("+CEREG: 2", "+CEREG:", True), ('+CREG: 1,"1A2B","01C3D4E"', "+CREG:", True),
    ('+CREG: 2,1,"1A2B","01C3D4E",7', "+CREG:", False), ("+CREG: 0,1", "+CREG:", False),
    ("+CGREG: 0,5", "+CGREG:", False), ("+C5GREG: 0,1", "+C5GREG:", False),
    ("+CME ERROR: 3", "+CREG:", False),
])
def test_urcs_by_form(line: str, expect: str | None, urc: bool) -> None:
    assert is_urc(line, expect) is urc


@pytest.mark.parametrize("line,stat,area,act,unsolicited", [
    ("+CREG: 0,1", RegStat.HOME, None, None, False),
    ('+CREG: 2,5,"1A2B","01C3D4E",7', RegStat.ROAMING, "1A2B", 7, False),
    ('+CEREG: 2,1,"1A2B","01C3D4E",7,0,0', RegStat.HOME, "1A2B", 7, False),  # with cause
    ('+CEREG: 4,1,"1A2B","01C3D4E",7,,,"00000010","00100001"', RegStat.HOME, "1A2B", 7, False),
    ("+CEREG: 0,9", RegStat.CSFB_NOT_PREFERRED_HOME, None, None, False),
    ("+CEREG: 0,10", RegStat.CSFB_NOT_PREFERRED_ROAMING, None, None, False),
    ("+CREG: 0,6", RegStat.SMS_ONLY_HOME, None, None, False),
    ('+CGREG: 2,1,"1A2B","01C3D4E",2,"01"', RegStat.HOME, "1A2B", 2, False),
    ('+C5GREG: 2,1,"00A1B2","000000123",11,"01",,,', RegStat.HOME, "00A1B2", 11, False),
    ('+C5GREG: 1,"00A1B2","000000123",11', RegStat.HOME, "00A1B2", 11, True),
    ('+CREG: 1,"1A2B","01C3D4E",7', RegStat.HOME, "1A2B", 7, True),
    ("+CEREG: 3", RegStat.DENIED, None, None, True),
    ('+CGREG: 5,"1A2B","01C3D4E"', RegStat.ROAMING, "1A2B", None, True),
])
def test_registration_forms(line: str, stat: RegStat, area: str | None, act: int | None,
                            unsolicited: bool) -> None:
    r = parse_reg_line(line)
    assert (r.stat, r.area, r.act, r.unsolicited) == (stat, area, act, unsolicited)


def test_registered_means_data_service() -> None:
    yes = {RegStat.HOME, RegStat.ROAMING, RegStat.CSFB_NOT_PREFERRED_HOME,
           RegStat.CSFB_NOT_PREFERRED_ROAMING}
    assert {s for s in RegStat if s.registered} == yes


def test_urc_before_answer_is_not_the_answer() -> None:
    # a URC with an unquoted numeric LAC used to be read as "<n>,<stat>" with the LAC as stat
    lines = ['+CREG: 1,"2345","01C3D4E",7', "+CREG: 2,2"]
    assert parse_reg(lines).stat is RegStat.SEARCHING
    with pytest.raises(AtParseError):
        parse_reg(['+CREG: 1,"2345","01C3D4E",7'])
    with pytest.raises(ModemError):  # parse errors are modem errors: the supervisor catches
        parse_reg(["+CREG: 2,99"])


@pytest.mark.parametrize("line,state", [
    ("+CPIN: READY", SimState.READY), ('+CPIN: "READY"', SimState.READY),
    ("+CPIN: SIM PIN", SimState.PIN), ("+CPIN: SIM PUK", SimState.PUK),
    ("+CPIN: SIM PIN2", SimState.PIN2), ("+CPIN: SIM PUK2", SimState.PUK2),
    ("+CPIN: PH-SIM PIN", SimState.PHONE_LOCKED), ("+CPIN: PH-NET PIN", SimState.NETWORK_LOCKED),
    ("+CPIN: PH-NETSUB PUK", SimState.NETWORK_LOCKED), ('+CPIN: "PH-SP PIN"',
                                                       SimState.NETWORK_LOCKED),
    ("+CPIN: NOT INSERTED", SimState.ABSENT), ("+CPIN: NOT READY", SimState.NOT_READY),
])
def test_cpin(line: str, state: SimState) -> None:
    assert parse_cpin([line]) is state


def test_cpin_unknown_is_an_error_and_usable_states() -> None:
    with pytest.raises(AtParseError):
        parse_cpin(["+CPIN: WHATEVER"])
    with pytest.raises(AtParseError):
        parse_cpin([])
    assert SimState.PUK2.usable and SimState.READY.usable and not SimState.PIN.usable
    assert sim_state_from_error("+CME ERROR: 10") is SimState.ABSENT
    assert sim_state_from_error("+CME ERROR: SIM busy") is SimState.NOT_READY
    assert sim_state_from_error("ERROR") is SimState.ERROR


ICCID19, ICCID20 = "8944110012345678901", "89012608822534804176"


@pytest.mark.parametrize("line,iccid", [
    (f"+CCID: {ICCID19}", ICCID19),  # SIMCom, u-blox
    (f'+CCID: "{ICCID20}"', ICCID20),  # quoted
    (f"+QCCID: {ICCID19}F", ICCID19),  # Quectel, F pad
    (f"+ICCID: {ICCID20}", ICCID20),  # Sierra
    (f"#CCID: {ICCID20}", ICCID20),  # Telit
    ("^ICCID: 984411002143658709F1", ICCID19),  # Huawei: raw EF_ICCID, pairs swapped, F pad
    ('+CRSM: 144,0,"98106280285243081467"', ICCID20),  # raw EF_ICCID via AT+CRSM
    (ICCID20, ICCID20),  # bare
    ("+CCID: 898602B6111730145318", "898602B6111730145318"),  # hex issuer digits
    ("+CCID: 89441100123456789012", None),  # Luhn fails
    ("+CSQ: 20,99", None), ("OK", None),
])
def test_iccid_encodings(line: str, iccid: str | None) -> None:
    assert parse_iccid([line]) == iccid


def test_swapped_iccid_helper() -> None:
    assert normalize_iccid("984411002143658709F1") == ICCID19
    assert normalize_iccid("12345") is None


def test_signal_csq_and_cesq() -> None:
    assert parse_csq(["+CSQ: 99,99"]).rssi_dbm is None
    with pytest.raises(AtParseError):
        parse_csq(["+CSQ: 45,0"])
    s = parse_cesq(["+CESQ: 99,99,255,255,20,45"])  # LTE: RSRQ -10 dB, RSRP -96 dBm
    assert (s.rssi_dbm, s.rsrp_dbm, s.rsrq_db, s.dbm) == (None, -96, -10.0, -96)
    assert parse_cesq(["+CESQ: 40,0,255,255,255,255"]).rssi_dbm == -71
    assert parse_cesq(["+CESQ: 99,99,255,255,255,255"]).dbm is None
    with pytest.raises(AtParseError):
        parse_cesq(["+CESQ: 1,2"])
