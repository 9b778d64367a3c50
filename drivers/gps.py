"""Where the camera is: a GPS receiver (mobile units), a provisioned site (pole units), or neither.

Every source answers :meth:`location` with a :class:`Location`; the pipeline stamps reads with
it. ``source`` says where the position came from, ``"none"`` when there is no usable fix (then
latitude/longitude are ``None``, never a stale or zero position).

NMEA parsing (:class:`NmeaState`) is pure: it takes sentences and a monotonic time and keeps the
latest fix. It understands RMC (position, speed, course, UTC date+time, validity) and GGA (fix
quality, satellites, position); VTG updates speed and course. Sentences that fail to parse or
carry a bad checksum are counted and skipped (a GPS on a noisy UART emits both).
:class:`GpsReceiver` reads a serial port in a thread; :class:`FakeGps` feeds recorded NMEA
through the same parser at a controllable pace.
"""

from __future__ import annotations

import abc
import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Literal, Protocol, Self

import pynmea2  # type: ignore[import-untyped]

from drivers.clock import Clock
from drivers.config_keys import setting
from drivers.errors import DriverError
from drivers.resource import Closing
from drivers.serial_port import LineReader, SerialError, SerialTimeout, open_serial

log = logging.getLogger(__name__)

KNOTS_TO_MPS = 0.514444


class GpsError(DriverError):
    """The GPS port cannot be used."""


@dataclass(frozen=True)
class Location:
    latitude: float | None
    longitude: float | None
    source: Literal["gps", "site", "none"]
    heading_deg: float | None = None
    speed_mps: float | None = None
    fix_time: datetime | None = None  # UTC time of the fix as the receiver reported it
    fix_quality: int = 0  # GGA: 0 none, 1 GPS, 2 DGPS, 4/5 RTK, 6 dead reckoning
    satellites: int = 0
    date_from_clock: bool = False  # fix_time's date is the system clock's (a GGA-only receiver)


NO_LOCATION = Location(None, None, "none")


@dataclass(frozen=True)
class GpsSettings:
    """Config section ``[gps]``.

    ``mode``: ``site`` (pole unit: ``site_latitude``/``site_longitude``, -90..90 / -180..180),
    ``gps`` (``port``: device path or pyserial URL, ``baudrate`` 4800..921600), ``none``.
    ``max_fix_age_s`` (1..600): an older fix is reported as ``none``.
    """

    mode: Literal["site", "gps", "none"] = setting(
        "site", choices=("site", "gps", "none"),
        doc="site = [unit] site_latitude/longitude (pole unit); gps = NMEA receiver (mobile "
        "unit); none.")
    port: str = setting("/dev/ttyAMA0", doc="GPS serial device or pyserial URL.")
    baudrate: int = setting(9600, min=4800, max=921600)
    max_fix_age_s: float = setting(10.0, min=1.0, max=600.0,
                                   doc="An older fix is reported as no location.")
    # Not keys of [gps]: copied from [unit] when the config is validated.
    site_latitude: float | None = None
    site_longitude: float | None = None


class LocationSource(Protocol):
    def location(self) -> Location: ...

    def close(self) -> None: ...


class _Closable(Closing):
    def close(self) -> None:
        pass


class SiteLocation(_Closable):
    """A pole unit's provisioned position (surveyed at install time)."""

    def __init__(self, latitude: float, longitude: float, heading_deg: float | None = None):
        if not (-90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0):
            raise GpsError(f"site position out of range: {latitude}, {longitude}")
        self._loc = Location(latitude, longitude, "site", heading_deg=heading_deg)

    def location(self) -> Location:
        return self._loc


class NoLocation(_Closable):
    def location(self) -> Location:
        return NO_LOCATION


#: Receivers cap reported speed at 1000 knots (the COCOM export limit is 515 m/s).
MAX_SPEED_MPS = 515.0


@dataclass(frozen=True)
class NmeaFix:
    """What one sentence says, already checked: a sentence is applied wholly or not at all.

    ``valid`` False means the sentence reports no fix (void RMC, GGA quality 0): it drops the
    fix. ``time_of_day`` is the sentence's own UTC time; ``date`` only RMC carries."""

    kind: Literal["RMC", "GGA", "GNS", "VTG"]
    valid: bool
    lat: float | None = None
    lon: float | None = None
    time_of_day: time | None = None
    date: date | None = None
    speed_mps: float | None = None
    course_deg: float | None = None
    quality: int | None = None
    satellites: int | None = None


def _num(v: str | None) -> float | None:
    return None if v in (None, "") else float(v)


def _position(msg: pynmea2.NMEASentence) -> tuple[float, float]:
    if not msg.lat or not msg.lon or msg.lat_dir not in ("N", "S") or msg.lon_dir not in (
        "E", "W"
    ):
        raise ValueError("no position")
    # ddmm.mmmm: minutes must be < 60, else a corrupted digit made an impossible angle
    if float(msg.lat) % 100 >= 60 or float(msg.lon) % 100 >= 60:
        raise ValueError("minutes out of range")
    lat, lon = float(msg.latitude), float(msg.longitude)
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise ValueError(f"position out of range: {lat}, {lon}")
    return lat, lon


def _speed_course(knots: float | None, course: float | None) -> tuple[float | None, float | None]:
    speed = None if knots is None else knots * KNOTS_TO_MPS
    if speed is not None and not 0.0 <= speed <= MAX_SPEED_MPS:
        raise ValueError(f"speed out of range: {speed} m/s")
    if course is not None and not 0.0 <= course <= 360.0:
        raise ValueError(f"course out of range: {course}")
    return speed, None if course is None else course % 360.0


def _time(msg: pynmea2.NMEASentence) -> time:
    t = msg.timestamp  # pynmea2 raises ValueError on second 60, hour 24, ...; may return text
    if not isinstance(t, time):
        raise ValueError("no time")
    return t


def parse_nmea(line: str) -> NmeaFix | None:
    """One NMEA sentence into a checked :class:`NmeaFix`; None for a well-formed sentence this
    driver does not use (GSV, GSA, ...). Raises ValueError when the sentence is malformed:
    bad checksum, impossible date/time, position, speed or course. Leading junk (NUL bytes, a
    cut sentence) before the last ``$`` is skipped: the reader resynchronises on ``$``."""
    start = line.rfind("$")
    if start < 0:
        raise ValueError("not NMEA")
    try:
        msg = pynmea2.parse(line[start:].strip(), check=True)
    except (pynmea2.ParseError, AttributeError, TypeError) as e:
        raise ValueError(str(e)) from e
    T = pynmea2.types.talker
    if isinstance(msg, T.RMC):
        # NMEA 2.3 mode indicator N = data not valid, even with status A
        if msg.status != "A" or getattr(msg, "mode_indicator", "") == "N":
            return NmeaFix("RMC", False)
        lat, lon = _position(msg)
        speed, course = _speed_course(_num(msg.spd_over_grnd), _num(msg.true_course))
        d = msg.datestamp  # pynmea2 gives back the raw text for 000000
        if not isinstance(d, date):
            raise ValueError(f"bad date {d!r}")
        return NmeaFix("RMC", True, lat, lon, _time(msg), d, speed, course)
    if isinstance(msg, T.GGA | T.GNS):
        if isinstance(msg, T.GGA):
            quality = int(msg.gps_qual or 0)
        else:  # GNS: one mode letter per constellation, N = no fix
            quality = 0 if set(msg.mode_indicator or "N") <= {"N"} else 1
        sats = int(msg.num_sats or 0)
        kind: Literal["GGA", "GNS"] = "GGA" if isinstance(msg, T.GGA) else "GNS"
        if quality <= 0:
            return NmeaFix(kind, False, quality=quality, satellites=sats)
        lat, lon = _position(msg)
        return NmeaFix(kind, True, lat, lon, _time(msg), quality=quality, satellites=sats)
    if isinstance(msg, T.VTG):
        if getattr(msg, "faa_mode", "") == "N":
            return None
        kmh = _num(msg.spd_over_grnd_kmph)
        speed, course = _speed_course(None if kmh is None else kmh / 3.6 / KNOTS_TO_MPS,
                                      _num(msg.true_track))
        return NmeaFix("VTG", True, speed_mps=speed, course_deg=course)
    return None


def _on_date(t: time, d: date, ref: datetime) -> datetime:
    """``t`` on date ``d``, moved a day either way when that is nearer ``ref`` (midnight)."""
    dt = datetime.combine(d, t).replace(tzinfo=UTC)
    if dt - ref > timedelta(hours=12):
        dt -= timedelta(days=1)
    elif ref - dt > timedelta(hours=12):
        dt += timedelta(days=1)
    return dt


class NmeaState:
    """Latest fix from a stream of NMEA sentences. Pure: no I/O, times passed in.

    Each position carries the UTC time of the sentence that gave it. GGA/GNS carry no date: it
    comes from the last RMC, or (a GGA-only receiver) from ``now_utc``, the system clock, and
    the location says so (``date_from_clock``)."""

    def __init__(self, max_fix_age_s: float = 10.0) -> None:
        self.max_fix_age_s = max_fix_age_s
        self.sentences = 0
        self.bad = 0
        self._lat: float | None = None
        self._lon: float | None = None
        self._valid = False
        self._speed: float | None = None
        self._course: float | None = None
        self._time: datetime | None = None
        self._date_from_clock = False
        self._rmc_time: datetime | None = None
        self._quality = 0
        self._sats = 0
        self._fix_mono: float | None = None

    def feed(self, line: str, now_mono: float, now_utc: datetime | None = None) -> bool:
        """Parse one sentence; True if it was understood (whatever its content)."""
        try:
            fix = parse_nmea(line)
        except (ValueError, TypeError, AttributeError):
            # bad checksum, or a checksummed sentence with malformed fields: nothing applied
            self.bad += 1
            return False
        self.sentences += 1
        if fix is not None:
            self._apply(fix, now_mono, now_utc)
        return True

    def _apply(self, fix: NmeaFix, now: float, now_utc: datetime | None) -> None:
        if fix.quality is not None:
            self._quality = fix.quality
            self._sats = fix.satellites or 0
        if fix.kind == "VTG":
            self._speed, self._course = fix.speed_mps, fix.course_deg
            return
        if not fix.valid:
            self._valid = False
            return
        assert fix.time_of_day is not None
        from_clock = False
        if fix.date is not None:
            stamp = datetime.combine(fix.date, fix.time_of_day).replace(tzinfo=UTC)
            self._rmc_time = stamp
            self._speed, self._course = fix.speed_mps, fix.course_deg
        elif self._rmc_time is not None and (
            now_utc is None or abs(now_utc - self._rmc_time) < timedelta(hours=12)
        ):
            stamp = _on_date(fix.time_of_day, self._rmc_time.date(), self._rmc_time)
        elif now_utc is not None:
            ref = now_utc.astimezone(UTC)
            stamp, from_clock = _on_date(fix.time_of_day, ref.date(), ref), True
        else:
            stamp, from_clock = None, True
        self._lat, self._lon, self._time = fix.lat, fix.lon, stamp
        self._date_from_clock = from_clock
        self._valid = True
        self._fix_mono = now

    def location(self, now_mono: float) -> Location:
        if (
            not self._valid
            or self._fix_mono is None
            or now_mono - self._fix_mono > self.max_fix_age_s
            or self._lat is None
            or self._lon is None
        ):
            return NO_LOCATION
        # Course over ground is noise when standing still; report it only when moving.
        heading = self._course if (self._speed or 0.0) >= 1.0 else None
        return Location(
            self._lat,
            self._lon,
            "gps",
            heading_deg=heading,
            speed_mps=self._speed,
            fix_time=self._time,
            fix_quality=self._quality,
            satellites=self._sats,
            date_from_clock=self._date_from_clock,
        )


class _NmeaThread(_Closable, abc.ABC):
    """Runs ``_next_line`` in a thread into an :class:`NmeaState`; ``location()`` is thread-safe."""

    def __init__(self, clock: Clock, max_fix_age_s: float) -> None:
        self._clock = clock
        self._state = NmeaState(max_fix_age_s)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failed: BaseException | None = None

    @abc.abstractmethod
    def _next_line(self) -> str | None:
        """The next NMEA line, or None when there is none yet."""

    def start(self) -> Self:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gps", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                line = self._next_line()
            except SerialTimeout:
                continue
            except (SerialError, OSError) as e:
                self.failed = e
                log.error("gps port failed", extra={"error": str(e)})
                return
            if line is None:
                return
            self.feed(line)

    def feed(self, line: str) -> bool:
        with self._lock:
            return self._state.feed(line, self._clock.monotonic(), self._clock.utcnow())

    def location(self) -> Location:
        with self._lock:
            return self._state.location(self._clock.monotonic())

    def counters(self) -> dict[str, int]:
        with self._lock:
            return {"sentences": self._state.sentences, "bad": self._state.bad}

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None


class GpsReceiver(_NmeaThread):
    """A GPS on a serial port (a path or a pyserial URL, or an already open port)."""

    def __init__(
        self,
        port: str | LineReader,
        clock: Clock,
        *,
        baudrate: int = 9600,
        max_fix_age_s: float = 10.0,
    ) -> None:
        super().__init__(clock, max_fix_age_s)
        if isinstance(port, str):
            try:
                port = LineReader(open_serial(port, baudrate), clock, max_line_bytes=256)
            except SerialError as e:
                raise GpsError(str(e)) from e
        self._reader = port

    def _next_line(self) -> str | None:
        return self._reader.read_line(0.5)

    def close(self) -> None:
        super().close()
        self._reader.close()


class FakeGps(_NmeaThread):
    """Replays NMEA sentences (a list, or a recorded file) through the real parser.

    ``interval_s`` paces sentences on the injected clock (``0``: only when :meth:`step` is
    called, for tests that want exact control). ``loop`` restarts at the end.
    """

    def __init__(
        self,
        sentences: Iterable[str] | Path,
        clock: Clock,
        *,
        interval_s: float = 0.0,
        loop: bool = False,
        max_fix_age_s: float = 10.0,
    ) -> None:
        super().__init__(clock, max_fix_age_s)
        if isinstance(sentences, Path):
            sentences = sentences.read_text(errors="replace").splitlines()
        self._lines = [s for s in sentences if s.strip()]
        self._interval = interval_s
        self._loop = loop
        self._it: Iterator[str] = iter(self._lines)

    def _take(self) -> str | None:
        try:
            return next(self._it)
        except StopIteration:
            if not self._loop or not self._lines:
                return None
            self._it = iter(self._lines)
            return next(self._it)

    def step(self, n: int = 1) -> int:
        """Feed the next ``n`` sentences now; returns how many were available."""
        done = 0
        for _ in range(n):
            line = self._take()
            if line is None:
                break
            self.feed(line)
            done += 1
        return done

    def _next_line(self) -> str | None:
        if self._interval > 0:
            self._clock.sleep(self._interval)
        return self._take()

    def start(self) -> Self:
        if self._interval <= 0:
            raise GpsError("FakeGps with interval_s=0 is driven by step(), not a thread")
        return super().start()


def open_location(settings: GpsSettings, clock: Clock) -> LocationSource:
    """The location source ``settings`` describe (a GPS receiver is started)."""
    if settings.mode == "site":
        if settings.site_latitude is None or settings.site_longitude is None:
            raise GpsError("gps mode 'site' needs site_latitude and site_longitude")
        return SiteLocation(settings.site_latitude, settings.site_longitude)
    if settings.mode == "gps":
        return GpsReceiver(
            settings.port, clock, baudrate=settings.baudrate, max_fix_age_s=settings.max_fix_age_s
        ).start()
    return NoLocation()


def _nmea_angle(value: float, lat: bool) -> tuple[str, str]:
    hemi = ("N" if value >= 0 else "S") if lat else ("E" if value >= 0 else "W")
    v = abs(value)
    deg = int(v)
    minutes = (v - deg) * 60
    return (f"{deg:02d}{minutes:07.4f}" if lat else f"{deg:03d}{minutes:07.4f}"), hemi


def simulated_drive(
    start_lat: float,
    start_lon: float,
    *,
    heading_deg: float,
    speed_mps: float,
    seconds: int,
    start: datetime,
) -> list[str]:
    """NMEA (RMC + GGA once a second) for a straight drive: a mobile unit for the simulation rig
    and tests. Flat-earth stepping is fine over the few kilometres a simulation covers."""
    import math

    out: list[str] = []
    lat, lon = start_lat, start_lon
    for s in range(seconds):
        t = start.astimezone(UTC) + timedelta(seconds=s)
        la, ns = _nmea_angle(lat, True)
        lo, ew = _nmea_angle(lon, False)
        hms = t.strftime("%H%M%S") + ".00"
        rmc = pynmea2.RMC(
            "GP",
            "RMC",
            (
                hms,
                "A",
                la,
                ns,
                lo,
                ew,
                f"{speed_mps / KNOTS_TO_MPS:.2f}",
                f"{heading_deg:.1f}",
                t.strftime("%d%m%y"),
                "",
                "",
            ),
        )
        gga = pynmea2.GGA(
            "GP", "GGA", (hms, la, ns, lo, ew, "1", "09", "0.9", "50.0", "M", "0.0", "M", "", "")
        )
        out += [str(rmc), str(gga)]
        d = speed_mps
        lat += d * math.cos(math.radians(heading_deg)) / 111_320.0
        lon += d * math.sin(math.radians(heading_deg)) / (111_320.0 * math.cos(math.radians(lat)))
    return out
