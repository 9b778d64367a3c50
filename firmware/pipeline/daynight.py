"""Day/night control of the IR illuminator.

:func:`decide` is the whole policy, pure: (state, scene brightness, time) -> (state, actions).
:class:`IlluminationController` samples brightness from frames (or a light sensor) and applies
the actions to a :class:`drivers.illuminator.Illuminator`.

Policy:

* DAY -> NIGHT when brightness < ``night_below``; NIGHT -> DAY when brightness > ``day_above``.
  The gap between the thresholds is the hysteresis.
* A change must hold for ``confirm_s`` (a passing headlight or a cloud is not dusk), and the
  current mode must have lasted ``min_dwell_s`` (the filter and the auto-exposure need time to
  settle; a flapping filter wears the solenoid and ruins the frames in between).
* Order of actions: to NIGHT the filter comes out before the LEDs come on; to DAY the LEDs go
  off before the filter goes in, so no frame is taken with IR light and the filter in.

Brightness: the mean luma (0..255) of a subsampled frame. When the camera reports exposure and
gain the luma is normalised to ``reference_exposure_us`` at gain 1, because auto-exposure keeps
raw luma nearly constant from noon to dusk; exposure x gain is what actually tracks the light.
Weakness: at night the IR LEDs light the scene themselves, so luma in NIGHT over-states ambient
light; ``day_above`` must sit above what the LEDs alone produce (check on site), or a light
sensor should feed :meth:`IlluminationController.observe_level`.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from drivers.camera import Frame
from drivers.clock import Clock
from drivers.errors import DriverError
from drivers.illuminator import Illuminator, IlluminatorSettings

log = logging.getLogger(__name__)


class Mode(enum.Enum):
    DAY = "day"
    NIGHT = "night"


@dataclass(frozen=True)
class SetIrCut:
    filter_in: bool


@dataclass(frozen=True)
class SetIrLed:
    level: float


Action = SetIrCut | SetIrLed


@dataclass(frozen=True)
class IllumState:
    mode: Mode
    since_s: float  # monotonic time the current mode began
    pending_since_s: float | None = None  # when brightness first called for the other mode


def actions_for(mode: Mode, settings: IlluminatorSettings) -> tuple[Action, ...]:
    if mode is Mode.NIGHT:
        return (SetIrCut(False), SetIrLed(settings.night_led_level))
    return (SetIrLed(0.0), SetIrCut(True))


def initial(
    brightness: float, now_s: float, settings: IlluminatorSettings
) -> tuple[IllumState, tuple[Action, ...]]:
    """Start-up: pick the mode from the first sample (midpoint of the band), apply it at once."""
    mid = (settings.night_below + settings.day_above) / 2
    mode = Mode.NIGHT if brightness < mid else Mode.DAY
    return IllumState(mode, now_s), actions_for(mode, settings)


def decide(
    state: IllumState, brightness: float, now_s: float, settings: IlluminatorSettings
) -> tuple[IllumState, tuple[Action, ...]]:
    if state.mode is Mode.DAY:
        wants_change = brightness < settings.night_below
    else:
        wants_change = brightness > settings.day_above
    if not wants_change:
        if state.pending_since_s is None:
            return state, ()
        return IllumState(state.mode, state.since_s), ()
    pending = state.pending_since_s if state.pending_since_s is not None else now_s
    if now_s - pending >= settings.confirm_s and now_s - state.since_s >= settings.min_dwell_s:
        mode = Mode.NIGHT if state.mode is Mode.DAY else Mode.DAY
        return IllumState(mode, now_s), actions_for(mode, settings)
    return IllumState(state.mode, state.since_s, pending), ()


def frame_brightness(frame: Frame, reference_exposure_us: int) -> float:
    """Mean luma of every 8th pixel, exposure-normalised when the camera reports exposure/gain."""
    img = frame.image[::8, ::8].astype(np.float32)
    luma = float((img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114).mean())
    if frame.exposure_us and frame.gain:
        luma *= reference_exposure_us / (frame.exposure_us * frame.gain)
    return luma


@dataclass(frozen=True)
class IlluminationStatus:
    """Day/night control as `vigil status` shows it (``as_dict()`` is the JSON view)."""

    mode: Mode | None
    switches: int
    failures: int

    def as_dict(self) -> dict[str, object]:
        return {"mode": self.mode.value if self.mode else None, "switches": self.switches,
                "failures": self.failures}


class IlluminationController:
    """Applies :func:`decide` to the illuminator. Call :meth:`observe_frame` with every frame
    (it samples at most once per ``sample_interval_s``) or run :meth:`run` with a sensor."""

    def __init__(
        self, illuminator: Illuminator, clock: Clock, settings: IlluminatorSettings
    ) -> None:
        self._ill = illuminator
        self._clock = clock
        self._s = settings
        self._state: IllumState | None = None
        self._last_sample: float | None = None
        self._lock = threading.Lock()
        self.switches = 0
        self.failures = 0

    @property
    def mode(self) -> Mode | None:
        return self._state.mode if self._state else None

    def status(self) -> IlluminationStatus:
        return IlluminationStatus(self.mode, self.switches, self.failures)

    def observe_frame(self, frame: Frame) -> Mode | None:
        now = self._clock.monotonic()
        if self._last_sample is not None and now - self._last_sample < self._s.sample_interval_s:
            return self.mode
        return self.observe_level(frame_brightness(frame, self._s.reference_exposure_us))

    def observe_level(self, brightness: float) -> Mode | None:
        with self._lock:
            now = self._clock.monotonic()
            self._last_sample = now
            if self._state is None:
                new, actions = initial(brightness, now, self._s)
            else:
                new, actions = decide(self._state, brightness, now, self._s)
            try:
                for action in actions:
                    if isinstance(action, SetIrCut):
                        self._ill.set_ir_cut(action.filter_in)
                    else:
                        self._ill.set_ir_led(action.level)
            except DriverError as e:
                # Keep the old state so the change is retried at the next sample.
                self.failures += 1
                log.error("illuminator action failed", extra={"error": str(e)})
                return self.mode
            if self._state is None or new.mode is not self._state.mode:
                self.switches += 1 if self._state is not None else 0
                log.info(
                    "illumination mode",
                    extra={"mode": new.mode.value, "brightness": round(brightness, 1)},
                )
            self._state = new
            return new.mode

    def run(
        self,
        stop: threading.Event,
        read_brightness: Callable[[], float],
    ) -> None:
        """Worker loop for a light sensor: sample every ``sample_interval_s`` until ``stop``."""
        while not stop.is_set():
            try:
                self.observe_level(read_brightness())
            except DriverError as e:
                self.failures += 1
                log.warning("light sensor read failed", extra={"error": str(e)})
            stop.wait(self._s.sample_interval_s)
