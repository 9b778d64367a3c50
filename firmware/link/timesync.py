"""Is the wall clock true? Sync status, jump detection and the flags reads carry.

Vigil does not set the clock: the OS keeps it with NTP (systemd-timesyncd or chrony) and, where
fitted, gpsd + chrony from the GPS. Vigil only *judges* it, so that a read stamped by a clock
that is not synchronised, or that just jumped, says so:

* :func:`probe_sync_status` asks ``timedatectl`` (systemd) and falls back to the kernel's
  ``adjtimex`` state (``TIME_ERROR`` = unsynchronised), degrading to "unknown" off Linux;
* :class:`JumpDetector` (pure) compares wall time against monotonic time between samples: any
  change of their difference beyond ``jump_threshold_s`` is a step of the wall clock;
* :class:`TimeSync` combines both, plus an optional reference (a GPS fix time), into
  :meth:`TimeSync.read_flags` (``clock_unsynced``, ``clock_jumped``, ``clock_offset``) and
  :meth:`TimeSync.is_synced`.

What a jump must never do elsewhere (docs/uplink.md, "Time"): order the outbox (it is ordered
by insertion sequence, not by timestamps), time deadlines or backoff (monotonic clock), or open
an extra day of byte budget (``firmware.uplink.pacing.ByteBudget`` needs 20 h of monotonic time).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from drivers.clock import Clock

log = logging.getLogger(__name__)

#: Before this the clock cannot be right (a Pi without RTC boots at 1970 or at the last
#: fake-hwclock save). The firmware's own release date is a safe floor.
MIN_PLAUSIBLE_UTC = datetime(2026, 1, 1, tzinfo=UTC)
_TIME_ERROR = 5  # adjtimex(2): clock not synchronised


@dataclass(frozen=True)
class SyncProbe:
    synchronized: bool | None  # None: cannot tell on this system
    source: str  # "timedatectl", "adjtimex", "none"
    detail: str = ""


def _adjtimex_state() -> int | None:
    """The kernel clock state from ``adjtimex`` with modes=0 (read only), or None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.adjtimex
    except (OSError, AttributeError):
        return None
    buf = ctypes.create_string_buffer(512)  # struct timex is ~208 bytes; modes=0 reads only
    rc = int(fn(buf))
    return None if rc < 0 else rc


def probe_sync_status(
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
    adjtimex: Callable[[], int | None] = _adjtimex_state,
) -> SyncProbe:
    """Ask systemd, then the kernel. Never raises."""
    try:
        r = run(
            ["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True, text=True, timeout=3, check=False,
        )
        value = (r.stdout or "").strip().lower()
        if r.returncode == 0 and value in ("yes", "no"):
            return SyncProbe(value == "yes", "timedatectl")
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        state = adjtimex()
    except OSError:
        state = None
    if state is not None:
        return SyncProbe(state != _TIME_ERROR, "adjtimex", f"state {state}")
    return SyncProbe(None, "none", "no timedatectl and no adjtimex")


@dataclass(frozen=True)
class Jump:
    delta_s: float  # how far the wall clock moved relative to monotonic time (+ forward)
    at_monotonic: float
    wall_after: datetime


class JumpDetector:
    """Pure: feed (monotonic, wall) samples; reports a step of the wall clock."""

    def __init__(self, threshold_s: float = 2.0) -> None:
        self.threshold_s = threshold_s
        self._offset: float | None = None

    def feed(self, monotonic: float, wall: datetime) -> Jump | None:
        offset = wall.timestamp() - monotonic
        prev, self._offset = self._offset, offset
        if prev is None:
            return None
        delta = offset - prev
        if abs(delta) > self.threshold_s:
            return Jump(delta, monotonic, wall)
        return None


@dataclass(frozen=True)
class TimeStatus:
    synced: bool | None
    source: str
    plausible: bool
    last_jump: Jump | None
    jumps: int
    reference_offset_s: float | None


@dataclass(frozen=True)
class TimeSyncStatus:
    """The clock judge as `vigil status` shows it (``as_dict()`` is the JSON view)."""

    time: TimeStatus
    flags: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        st = self.time
        return {
            "synced": st.synced,
            "source": st.source,
            "plausible": st.plausible,
            "jumps": st.jumps,
            "last_jump_s": round(st.last_jump.delta_s, 3) if st.last_jump else None,
            "reference_offset_s": st.reference_offset_s,
            "flags": list(self.flags),
        }


class TimeSync:
    """Clock judge for the daemon. :meth:`step` samples (call it every few seconds from a
    worker or the supervisor tick); :meth:`read_flags` is what the pipeline stamps on reads."""

    def __init__(
        self,
        clock: Clock,
        probe: Callable[[], SyncProbe] = probe_sync_status,
        probe_interval_s: float = 60.0,
        jump_threshold_s: float = 2.0,
        jump_flag_window_s: float = 600.0,
        max_reference_offset_s: float = 2.0,
    ) -> None:
        self._clock = clock
        self._probe = probe
        self._probe_interval_s = probe_interval_s
        self._detector = JumpDetector(jump_threshold_s)
        self._window = jump_flag_window_s
        self._max_ref = max_reference_offset_s
        self._lock = threading.Lock()
        self._sync = SyncProbe(None, "none", "not probed yet")
        self._next_probe = clock.monotonic()
        self._last_jump: Jump | None = None
        self._jumps = 0
        self._ref_offset: float | None = None
        self._ref_at: float | None = None

    def step(self) -> float:
        mono, wall = self._clock.monotonic(), self._clock.utcnow()
        jump = self._detector.feed(mono, wall)
        if jump is not None:
            with self._lock:
                self._last_jump, self._jumps = jump, self._jumps + 1
            log.warning(
                "wall clock jumped %+.1f s", jump.delta_s,
                extra={"delta_s": round(jump.delta_s, 3), "wall_after": wall.isoformat()},
            )
        if mono >= self._next_probe:
            probe = self._probe()
            with self._lock:
                changed = probe.synchronized != self._sync.synchronized
                self._sync = probe
            self._next_probe = mono + self._probe_interval_s
            if changed:
                log.info("clock synchronised: %s (%s)", probe.synchronized, probe.source,
                         extra={"synced": probe.synchronized, "source": probe.source})
        return min(5.0, self._probe_interval_s)

    def observe_reference(self, reference_utc: datetime) -> None:
        """A trusted time seen now (GPS fix time): remembers how far the OS clock is off."""
        off = (self._clock.utcnow() - reference_utc).total_seconds()
        with self._lock:
            self._ref_offset, self._ref_at = off, self._clock.monotonic()

    def status(self) -> TimeStatus:
        now = self._clock.utcnow()
        with self._lock:
            ref = self._ref_offset
            if self._ref_at is not None and self._clock.monotonic() - self._ref_at > 3600:
                ref = None  # a reference an hour old says little
            return TimeStatus(
                synced=self._sync.synchronized,
                source=self._sync.source,
                plausible=now >= MIN_PLAUSIBLE_UTC,
                last_jump=self._last_jump,
                jumps=self._jumps,
                reference_offset_s=ref,
            )

    def is_synced(self) -> bool:
        st = self.status()
        return bool(st.synced) and st.plausible and (
            st.reference_offset_s is None or abs(st.reference_offset_s) <= self._max_ref
        )

    def read_flags(self) -> tuple[str, ...]:
        """Flags for a read stamped now. Unknown sync counts as unsynchronised: evidence
        should say when its time was not vouched for."""
        st = self.status()
        flags = []
        if not st.synced or not st.plausible:
            flags.append("clock_unsynced")
        if (
            st.last_jump is not None
            and self._clock.monotonic() - st.last_jump.at_monotonic <= self._window
        ):
            flags.append("clock_jumped")
        if st.reference_offset_s is not None and abs(st.reference_offset_s) > self._max_ref:
            flags.append("clock_offset")
        return tuple(flags)

    def read_stamp(self) -> tuple[tuple[str, ...], float | None]:
        """What a read stamped now records of its clock: :meth:`read_flags` and the offset from
        the GPS reference in seconds (None without a reference in the last hour)."""
        return self.read_flags(), self.status().reference_offset_s

    def report(self) -> TimeSyncStatus:
        """:meth:`status` with the flags a read stamped now would carry (`vigil status`)."""
        return TimeSyncStatus(self.status(), self.read_flags())
