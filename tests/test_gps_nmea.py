from __future__ import annotations

import time
from datetime import UTC, datetime

import pynmea2  # type: ignore[import-untyped]
import pytest

from drivers.clock import FakeClock, SystemClock
from drivers.gps import (
    NO_LOCATION,
    FakeGps,
    GpsError,
    GpsReceiver,
    GpsSettings,
    NmeaState,
    SiteLocation,
    open_location,
    simulated_drive,
)
from drivers.serial_port import LineReader, open_serial

START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DRIVE = simulated_drive(45.5, -122.6, heading_deg=90.0, speed_mps=15.0, seconds=5, start=START)
# str() of a pynmea2 sentence appends the right checksum
RMC_VOID = str(
    pynmea2.RMC("GP", "RMC", ("120000.00", "V", "", "", "", "", "", "", "231126", "", ""))
)
GGA_NOFIX = str(
    pynmea2.GGA(
        "GP", "GGA", ("120000.00", "", "", "", "", "0", "00", "99.9", "", "M", "", "M", "", "")
    )
)


def test_fix_fields_from_rmc_and_gga() -> None:
    s = NmeaState()
    for line in DRIVE:
        assert s.feed(line, 10.0)
    loc = s.location(10.5)
    assert loc.source == "gps"
    assert loc.latitude == pytest.approx(45.5, abs=1e-6)
    assert loc.longitude == pytest.approx(-122.6 + 4 * 15 / (111_320 * 0.7009), abs=2e-5)
    assert loc.speed_mps == pytest.approx(15.0, abs=0.01)
    assert loc.heading_deg == pytest.approx(90.0)
    assert loc.fix_time == datetime(2026, 11, 23, 12, 0, 4, tzinfo=UTC)
    assert (loc.fix_quality, loc.satellites) == (1, 9)


def test_garbage_and_bad_checksums_are_counted_and_skipped() -> None:
    s = NmeaState()
    good = DRIVE[0]
    corrupted = good[:-2] + ("00" if good[-2:] != "00" else "11")
    for line in ["", "garbage", "\x00\x01$$", corrupted, "$GPRMC,bad*", good]:
        s.feed(line, 1.0)
    assert s.bad == 5 and s.sentences == 1
    assert s.location(1.0).source == "gps"


def test_no_fix_and_void_status_give_none() -> None:
    s = NmeaState()
    assert s.feed(RMC_VOID, 0.0) and s.feed(GGA_NOFIX, 0.0)
    assert s.location(0.0) == NO_LOCATION
    for line in DRIVE[:2]:
        s.feed(line, 1.0)
    assert s.location(1.0).source == "gps"
    s.feed(RMC_VOID, 2.0)  # the receiver lost the fix
    assert s.location(2.0) == NO_LOCATION


def test_stale_fix_expires() -> None:
    s = NmeaState(max_fix_age_s=5.0)
    for line in DRIVE[:2]:
        s.feed(line, 100.0)
    assert s.location(104.0).source == "gps"
    assert s.location(106.0) == NO_LOCATION


def test_heading_hidden_when_standing_still() -> None:
    still = simulated_drive(45.5, -122.6, heading_deg=200.0, speed_mps=0.0, seconds=1, start=START)
    s = NmeaState()
    for line in still:
        s.feed(line, 0.0)
    loc = s.location(0.0)
    assert loc.source == "gps" and loc.heading_deg is None and loc.speed_mps == 0.0


def test_fake_gps_stepped_with_fake_clock() -> None:
    clock = FakeClock()
    with FakeGps(["junk", *DRIVE], clock, max_fix_age_s=3.0) as gps:
        assert gps.location() == NO_LOCATION
        assert gps.step(3) == 3
        assert gps.location().source == "gps"
        clock.advance(4.0)
        assert gps.location() == NO_LOCATION
        assert gps.counters() == {"sentences": 2, "bad": 1}
        with pytest.raises(GpsError):
            gps.start()


def test_fake_gps_thread_from_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "drive.nmea"
    path.write_text("\n".join(DRIVE) + "\n")
    with FakeGps(path, SystemClock(), interval_s=0.001, loop=True).start() as gps:
        deadline = time.monotonic() + 2.0
        while gps.location().source != "gps" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gps.location().source == "gps"


def test_receiver_over_loopback_serial() -> None:
    port = open_serial("loop://", 9600, read_timeout_s=0.01)
    clock = SystemClock()
    with GpsReceiver(LineReader(port, clock), clock).start() as gps:
        port.write(("\r\n".join(["noise", *DRIVE[:2]]) + "\r\n").encode())
        deadline = time.monotonic() + 2.0
        while gps.location().source != "gps" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gps.location().latitude == pytest.approx(45.5)
        assert gps.counters()["bad"] == 1


def test_site_and_factory() -> None:
    clock = FakeClock()
    loc = open_location(GpsSettings(mode="site", site_latitude=45.5, site_longitude=-122.6), clock)
    assert loc.location().source == "site" and loc.location().latitude == 45.5
    assert open_location(GpsSettings(mode="none"), clock).location() == NO_LOCATION
    with pytest.raises(GpsError):
        open_location(GpsSettings(mode="site"), clock)
    with pytest.raises(GpsError):
        SiteLocation(95.0, 0.0)
    with pytest.raises(GpsError):
        open_location(GpsSettings(mode="gps", port="/dev/no-such-gps"), clock)


# -- sentence-level rules: own time stamp, all or nothing, ranges, resync, GGA-only ------------


def _rmc(hms: str, lat: str, lon: str, date: str, spd: str = "10.0", crs: str = "90.0") -> str:
    return str(pynmea2.RMC("GN", "RMC", (hms, "A", lat, "N", lon, "W", spd, crs, date, "", "",
                                         "A")))


def _gga(hms: str, lat: str, lon: str, qual: str = "1") -> str:
    return str(pynmea2.GGA("GN", "GGA", (hms, lat, "N", lon, "W", qual, "08", "1.0", "50.0", "M",
                                         "0.0", "M", "", "")))


def test_each_position_carries_its_own_sentence_time() -> None:
    s = NmeaState()
    s.feed(_rmc("120000.00", "4530.000", "12236.000", "231126"), 1.0)
    s.feed(_gga("120001.00", "4530.100", "12236.000"), 2.0)
    loc = s.location(2.0)
    assert loc.latitude == pytest.approx(45.501667, abs=1e-5)
    assert loc.fix_time == datetime(2026, 11, 23, 12, 0, 1, tzinfo=UTC)
    s.feed(_gga("121500.00", "4531.000", "12236.000"), 900.0)  # after a 15 min data gap
    assert s.location(900.0).fix_time == datetime(2026, 11, 23, 12, 15, tzinfo=UTC)
    assert not s.location(900.0).date_from_clock


def test_gga_after_midnight_rolls_the_date() -> None:
    s = NmeaState()
    s.feed(_rmc("235959.00", "4530.000", "12236.000", "231126"), 1.0)
    s.feed(_gga("000000.00", "4530.000", "12236.000"), 2.0)
    assert s.location(2.0).fix_time == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("bad", [
    _rmc("120005.00", "4600.000", "12300.000", "000000"),  # date 000000
    _rmc("120060.00", "4600.000", "12300.000", "231126"),  # second 60
    _rmc("120005.00", "47400.000", "32200.000", "231126"),  # lat 474°, lon -322°
    _rmc("120005.00", "4672.000", "12300.000", "231126"),  # 72 minutes
    _rmc("120005.00", "4600.000", "12300.000", "231126", spd="9999.0"),  # > 1000 kn
    _rmc("120005.00", "4600.000", "12300.000", "231126", crs="400.0"),
    _gga("120005.00", "9500.000", "12300.000"),
    _gga("126105.00", "4600.000", "12300.000"),
])
def test_malformed_sentence_changes_nothing(bad: str) -> None:
    s = NmeaState()
    s.feed(_rmc("120000.00", "4530.000", "12236.000", "231126"), 1.0)
    before = s.location(1.0)
    assert not s.feed(bad, 1.5)
    assert s.location(1.5) == before and s.bad == 1


@pytest.mark.parametrize("junk", ["\x00\x00\x00", "\xff\xfe", "$GPGSV,3,1,1", "garbage"])
def test_resynchronises_on_dollar(junk: str) -> None:
    s = NmeaState()
    assert s.feed(junk + DRIVE[0], 1.0)
    assert s.location(1.0).source == "gps"


def test_gga_only_receiver_gets_a_fix_dated_by_the_clock() -> None:
    s = NmeaState()
    wall = datetime(2026, 11, 23, 12, 0, 3, tzinfo=UTC)
    assert s.feed(_gga("120002.00", "4530.000", "12236.000", qual="2"), 1.0, wall)
    loc = s.location(1.0)
    assert loc.source == "gps" and loc.fix_quality == 2 and loc.date_from_clock
    assert loc.fix_time == datetime(2026, 11, 23, 12, 0, 2, tzinfo=UTC)
    late = datetime(2026, 11, 24, 0, 0, 1, tzinfo=UTC)  # clock past midnight, fix just before
    s.feed(_gga("235959.00", "4530.000", "12236.000"), 2.0, late)
    assert s.location(2.0).fix_time == datetime(2026, 11, 23, 23, 59, 59, tzinfo=UTC)
    s.feed(_gga("000000.00", "", "", qual="0"), 3.0, late)
    assert s.location(3.0) == NO_LOCATION


def test_gns_and_mode_n_sentences() -> None:
    s = NmeaState()
    gns = str(pynmea2.GNS("GN", "GNS", ("120000.00", "4530.000", "N", "12236.000", "W", "AA",
                                        "12", "0.9", "50.0", "0.0", "", "")))
    assert s.feed(gns, 1.0, datetime(2026, 11, 23, 12, 0, 1, tzinfo=UTC))
    assert s.location(1.0).source == "gps"
    void = str(pynmea2.RMC("GN", "RMC", ("120001.00", "A", "4530.000", "N", "12236.000", "W",
                                         "0.0", "", "231126", "", "", "N")))
    s.feed(void, 2.0)
    assert s.location(2.0) == NO_LOCATION


def test_receiver_over_a_pty_with_nul_bytes_before_dollar() -> None:
    import os

    master, slave = os.openpty()
    clock = SystemClock()
    try:
        with GpsReceiver(os.ttyname(slave), clock).start() as gps:
            os.write(master, b"\x00\x00\x00" + DRIVE[0].encode() + b"\r\n\xff~" +
                     DRIVE[1].encode() + b"\r\n")
            deadline = time.monotonic() + 2.0
            while gps.counters()["sentences"] < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert gps.counters() == {"sentences": 2, "bad": 0}
            assert gps.location().latitude == pytest.approx(45.5)
    finally:
        os.close(master)
        os.close(slave)
