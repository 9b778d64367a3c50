"""Modem driver on a pseudo-terminal against the scripted fake modem: parsing, echo, URCs,
line noise, silence, and the recovery ladder."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from drivers.clock import FakeClock, SystemClock
from drivers.errors import DeviceTimeout
from drivers.modem import (
    AtChannel,
    Modem,
    ModemCommandError,
    ModemError,
    ModemSettings,
    ModemTimeout,
    RegStat,
    SimState,
    parse_cops,
    parse_creg,
    parse_csq,
    parse_iccid,
    parse_imei,
)
from drivers.serial_port import open_serial
from firmware.link.modem_supervisor import (
    LadderState,
    ModemSupervisor,
    RecoveryAction,
    next_recovery,
)
from firmware.link.state import LinkState, LinkStateMachine
from tests.kit.modem import FakeModem, FakePowerSwitch


@pytest.fixture
def rig() -> Iterator[tuple[FakeModem, Modem]]:
    fake = FakeModem()
    port = open_serial(fake.port_name, 115200, write_timeout_s=2.0)
    ch = AtChannel(port, SystemClock(), timeout_s=0.5)
    try:
        yield fake, Modem(ch)
    finally:
        ch.close()
        fake.close()


def test_queries_with_echo_on(rig: tuple[FakeModem, Modem]) -> None:
    fake, modem = rig
    assert fake.state.echo
    st = modem.status()
    assert st.sim is SimState.READY and st.registration is RegStat.HOME and st.registered
    assert st.operator == "Vigil Test Net"
    assert st.signal is not None and st.signal.rssi_dbm == -73 and st.signal.csq == 20
    assert st.iccid == "8944110012345678901" and st.imei == "356938035643809"
    modem.init()
    assert not fake.state.echo
    assert modem.signal().rssi_dbm == -73


def test_urcs_set_aside_not_taken_for_answers(rig: tuple[FakeModem, Modem]) -> None:
    fake, modem = rig
    fake.inject("RING")
    fake.inject("+CREG: 5")  # URC form: one field, must not be read as the answer
    time.sleep(0.05)
    assert modem.registration() is RegStat.HOME
    assert "RING" in modem.ch.urcs and "+CREG: 5" in modem.ch.urcs


def test_line_noise_dropped(rig: tuple[FakeModem, Modem]) -> None:
    fake, modem = rig
    fake.state.garbage = True
    assert modem.signal().rssi_dbm == -73
    assert modem.sim_state() is SimState.READY
    assert modem.ch.noise_lines >= 2


def test_silent_modem_times_out_then_recovers(rig: tuple[FakeModem, Modem]) -> None:
    fake, modem = rig
    fake.state.silent = True
    t0 = time.monotonic()
    with pytest.raises(ModemTimeout) as ei:
        modem.signal()
    assert isinstance(ei.value, DeviceTimeout) and isinstance(ei.value, TimeoutError)
    assert time.monotonic() - t0 < 1.5
    fake.power_cycle()
    time.sleep(0.05)
    assert modem.signal().csq == 20  # the RDY URC is not mistaken for an answer


def test_errors_and_absent_sim(rig: tuple[FakeModem, Modem]) -> None:
    fake, modem = rig
    with pytest.raises(ModemCommandError):
        modem.ch.command("AT+NOPE")
    fake.state.sim = "NOT INSERTED"
    assert modem.sim_state() is SimState.ABSENT
    st = modem.status()
    assert st.sim is SimState.ABSENT and not st.registered
    fake.state.sim = "SIM PIN"
    assert modem.sim_state() is SimState.PIN


def test_lte_only_registration(rig: tuple[FakeModem, Modem]) -> None:
    fake, modem = rig
    fake.state.lte_only = True
    assert modem.registration() is RegStat.HOME
    fake.state.stat = 2
    assert modem.registration() is RegStat.SEARCHING


@pytest.mark.parametrize(
    "line,dbm", [("+CSQ: 0,99", -113), ("+CSQ: 31,0", -51), ("+CSQ: 99,99", None),
                 ("+CSQ: 15,3", -83)],
)
def test_parse_csq(line: str, dbm: int | None) -> None:
    assert parse_csq([line]).rssi_dbm == dbm


def test_parsers() -> None:
    assert parse_creg(["+CREG: 2,5,\"1A\",\"2B\""]) is RegStat.ROAMING
    assert parse_creg(["+CEREG: 0,3"], "+CEREG:") is RegStat.DENIED
    assert parse_creg(["+CREG: 0,9"]) is RegStat.CSFB_NOT_PREFERRED_HOME
    with pytest.raises(ModemError):
        parse_creg(['+CREG: 1,"1A","2B"'])  # URC form only: no answer
    with pytest.raises(ModemError):
        parse_creg(["+CREG: 0,12"])  # not a 27.007 <stat>: an error, not "not registered"
    assert parse_cops(['+COPS: 0,0,"EE",7']) == "EE"
    assert parse_cops(["+COPS: 0"]) is None
    assert parse_iccid(['+QCCID: 89012608822534804176']) == "89012608822534804176"
    assert parse_iccid(["+ICCID: 8944110012345678901F"]) == "8944110012345678901"
    assert parse_iccid(['+QCCID: 89441100123456789012']) is None  # fails the Luhn check
    assert parse_iccid(["nothing"]) is None
    assert parse_imei(["356938035643809"]) == "356938035643809"
    with pytest.raises(ModemError):
        parse_csq(["+CSQ: x,y"])


S = ModemSettings(reregister_after_s=100, radio_cycle_after_s=200, power_cycle_after_s=300,
                  power_cycle_repeat_s=1000)


def test_ladder_order_and_reset() -> None:
    st = LadderState()
    seen = []
    for t in range(0, 2000, 50):
        st, act = next_recovery(st, float(t), float(t), S, power_available=True)
        if act:
            seen.append((t, act))
    assert seen == [
        (100, RecoveryAction.REREGISTER),
        (200, RecoveryAction.RADIO_CYCLE),
        (300, RecoveryAction.POWER_CYCLE),
        (1300, RecoveryAction.POWER_CYCLE),
    ]
    st, act = next_recovery(st, None, 2000.0, S, True)
    assert st == LadderState() and act is None
    st, act = next_recovery(LadderState(), 5000.0, 0.0, S, power_available=False)
    st, act2 = next_recovery(st, 5000.0, 0.0, S, power_available=False)
    st, act3 = next_recovery(st, 9000.0, 9000.0, S, power_available=False)
    assert (act, act2, act3) == (RecoveryAction.REREGISTER, RecoveryAction.RADIO_CYCLE, None)


def test_supervisor_climbs_ladder_until_cured(rig: tuple[FakeModem, Modem]) -> None:
    fake, modem = rig
    clock = FakeClock()
    link = LinkStateMachine(clock)
    power = FakePowerSwitch(fake.power_cycle)
    sup = ModemSupervisor(modem, link, S, clock, power)
    fake.state.stat = 2  # searching: no service
    fake.state.power_cycle_cures = True
    for _ in range(8):
        sup.step()
        clock.advance(60)
    st = sup.status().as_dict()
    assert list(st) == ["sim", "registration", "operator", "signal_dbm", "iccid", "imei",
                        "unresponsive_polls", "recovery_actions"]  # pinned: `vigil status`
    assert list(st["recovery_actions"][0]) == ["action", "result"]
    actions = [a["action"] for a in sup.status().as_dict()["recovery_actions"]]
    assert actions == ["reregister", "radio_cycle", "power_cycle"]
    assert fake.power_cycles == 1 and power.cycles == [S.power_off_s]
    sup.step()
    assert sup.last_status is not None and sup.last_status.registered
    assert link.snapshot.registered is True


def test_supervisor_power_cycles_a_silent_modem(rig: tuple[FakeModem, Modem]) -> None:
    fake, modem = rig
    clock = FakeClock()
    link = LinkStateMachine(clock)
    link.on_success(0.1)
    link.on_success(0.1)
    power = FakePowerSwitch(fake.power_cycle)
    sup = ModemSupervisor(modem, link, ModemSettings(unresponsive_polls_to_power_cycle=2), clock,
                          power)
    modem.ch.timeout_s = 0.2
    fake.state.silent = True
    sup.step()
    assert link.state is LinkState.DOWN and fake.power_cycles == 0
    sup.step()
    assert fake.power_cycles == 1
    time.sleep(0.05)
    sup.step()
    assert sup.status().as_dict()["signal_dbm"] == -73 and sup.status().unresponsive_polls == 0


def test_gpio_power_switch_on_mock_pins() -> None:
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    from drivers.modem import GpioPowerSwitch

    before = Device.pin_factory
    factory = MockFactory()
    try:
        pin = factory.pin(17)
        seen: list[bool] = []

        class Probe(FakeClock):
            def sleep(self, seconds: float) -> None:
                seen.append(pin.state)  # the supply is cut while we wait
                super().sleep(seconds)

        clock = Probe()
        sw = GpioPowerSwitch(17, clock, factory, active_high=True)
        assert pin.state is False or pin.state == 0
        sw.power_cycle(5.0)
        assert seen == [True] or seen == [1]
        assert not pin.state and clock.monotonic() == 1005.0
        sw.close()
    finally:
        factory.close()
    assert Device.pin_factory is before  # the global factory was never used


def test_open_modem_from_settings() -> None:
    from drivers.modem import open_modem, power_switch_for

    with FakeModem() as fake:
        m = open_modem(ModemSettings(port=fake.port_name, command_timeout_s=0.4), SystemClock())
        try:
            assert m.ch.timeout_s == 0.4 and m.signal().csq == 20
        finally:
            m.ch.close()
    def no_pins() -> None:
        raise AssertionError("no pin factory is opened without a power pin")

    assert power_switch_for(ModemSettings(power_gpio=None), SystemClock(), no_pins) is None


# -- transcripts through the real channel on a pty (forms from the vendors' AT manuals) -------


@pytest.mark.parametrize("reply", [
    b"\r\nCOMMAND NOT SUPPORT\r\n",  # Huawei
    b"\r\nMODEM ERROR: 3\r\n",  # Sierra Wireless
    b"\r\nNO CARRIER\r\n",  # Telit / SIMCom after a non-dial command
    b"\r\n+CME ERROR: operation not supported\r\n",  # AT+CMEE=2
    b"\r\n+EXT ERROR: 20\r\n",  # u-blox
])
def test_vendor_final_codes_end_the_command(rig: tuple[FakeModem, Modem], reply: bytes) -> None:
    fake, modem = rig
    fake.state.script["AT+QCFG?"] = reply
    t0 = time.monotonic()
    with pytest.raises(ModemCommandError):
        modem.ch.command("AT+QCFG?")
    assert time.monotonic() - t0 < 0.4  # ended by the code, not the 0.5 s deadline


def test_urcs_after_ok_in_the_same_read_are_kept(rig: tuple[FakeModem, Modem]) -> None:
    fake, modem = rig
    fake.state.script["AT+CSQ"] = (b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n\r\n+CIEV: 2,3\r\n"
                                   b"\r\n+CRING: VOICE\r\n\r\n+CLIP: \"+441234567\",145,,,,0\r\n")
    assert modem.signal().csq == 20
    time.sleep(0.05)
    modem.ch.command("AT")
    assert {"+CIEV: 2,3", "+CRING: VOICE"} <= set(modem.ch.urcs)
    assert '+CLIP: "+441234567",145,,,,0' in modem.ch.urcs and modem.ch.noise_lines == 0


def test_registration_urc_just_before_the_answer(rig: tuple[FakeModem, Modem]) -> None:
    fake, modem = rig
    for cmd in ("AT+CEREG?", "AT+CREG?"):
        fake.state.script[cmd] = (b'\r\n' + cmd[2:-1].encode() + b': 1,"2345","01C3D4E",7\r\n'
                                  + b"\r\n" + cmd[2:-1].encode() + b": 2,2\r\n\r\nOK\r\n")
    fake.state.script["AT+C5GREG?"] = b"\r\n+C5GREG: 1\r\n\r\nERROR\r\n"  # no 5G: the URC stays
    assert modem.registration() is RegStat.SEARCHING  # not HOME, not the LAC 2345 as stat
    assert '+CEREG: 1,"2345","01C3D4E",7' in modem.ch.urcs and "+C5GREG: 1" in modem.ch.urcs
    assert modem.signal().csq == 20  # nothing leaked into the next answer


def test_csfb_not_preferred_is_registered(rig: tuple[FakeModem, Modem]) -> None:
    fake, modem = rig
    fake.state.stat = 9
    assert modem.registration() is RegStat.CSFB_NOT_PREFERRED_HOME
    assert modem.status().registered
    fake.state.script["AT+CEREG?"] = b"\r\n+CEREG: 0,4\r\n\r\nOK\r\n"
    fake.state.script["AT+CGREG?"] = b'\r\n+CGREG: 2,10,"1A2B","01C3D4E",2\r\n\r\nOK\r\n'
    assert modem.registration() is RegStat.CSFB_NOT_PREFERRED_ROAMING
    assert "AT+C5GREG?" in fake.received


def test_sim_puk2_and_quoted_cpin(rig: tuple[FakeModem, Modem]) -> None:
    fake, modem = rig
    fake.state.script["AT+CPIN?"] = b'\r\n+CPIN: "READY"\r\n\r\nOK\r\n'
    assert modem.sim_state() is SimState.READY
    fake.state.sim = "SIM PUK2"
    del fake.state.script["AT+CPIN?"]
    assert modem.status().registered  # the SIM works; only PIN2 files are locked
    fake.state.sim = "PH-NET PIN"
    assert modem.sim_state() is SimState.NETWORK_LOCKED


def test_unknown_reply_is_an_error_and_no_power_cycle(rig: tuple[FakeModem, Modem]) -> None:
    fake, modem = rig
    fake.state.script["AT+CPIN?"] = b"\r\n+CPIN: SOMETHING NEW\r\n\r\nOK\r\n"
    with pytest.raises(ModemError):
        modem.status()
    fake.state.script["AT+CPIN?"] = b"\r\nWHAT IS THIS\r\n"  # alive, but no final code
    with pytest.raises(ModemError) as ei:
        modem.ch.command("AT+CPIN?", expect="+CPIN:")
    assert not isinstance(ei.value, ModemTimeout)
    clock = FakeClock()
    power = FakePowerSwitch(fake.power_cycle)
    sup = ModemSupervisor(modem, LinkStateMachine(clock), ModemSettings(
        unresponsive_polls_to_power_cycle=1), clock, power)
    for _ in range(3):
        sup.step()
    assert power.cycles == [] and sup.status().unresponsive_polls == 0


def test_swapped_iccid_through_the_modem(rig: tuple[FakeModem, Modem]) -> None:
    fake, modem = rig
    fake.state.script["AT+CCID"] = b"\r\nCOMMAND NOT SUPPORT\r\n"
    fake.state.script["AT^ICCID?"] = b"\r\n^ICCID: 984411002143658709F1\r\n\r\nOK\r\n"
    assert modem.iccid() == "8944110012345678901"


def test_cesq_when_csq_unknown(rig: tuple[FakeModem, Modem]) -> None:
    fake, modem = rig
    fake.state.csq = 99
    fake.state.script["AT+CESQ"] = b"\r\n+CESQ: 99,99,255,255,20,45\r\n\r\nOK\r\n"
    s = modem.signal()
    assert (s.csq, s.rsrp_dbm, s.dbm) == (99, -96, -96)
