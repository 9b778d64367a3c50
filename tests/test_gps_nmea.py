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
