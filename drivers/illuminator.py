"""The IR illuminator: an IR LED bank (PWM brightness) and the lens's IR-cut filter, over gpiozero.

Hardware assumed (document your board if it differs):

* **IR LED bank**: a constant-current LED driver whose enable/dim input takes PWM from one GPIO
  (``ir_led_pin``, gpiozero ``PWMOutputDevice``; value 0..1 = duty cycle). Use a hardware-PWM
  pin (GPIO 12/13/18/19 on a Pi) when the factory supports it; ``pwm_hz`` stays well above what
  the rolling shutter could alias with at 1/``shutter_max_us``.
* **IR-cut filter**, two kinds of actuator (``ir_cut_mode``):

  - ``level``: a filter module with a logic input (``ir_cut_pin``, ``DigitalOutputDevice``);
    high = filter in (day) when ``ir_cut_active_high``.
  - ``pulse``: the common bistable solenoid driven through an H-bridge (e.g. DRV8833) on two
    pins: ``ir_cut_pin`` high for ``ir_cut_pulse_ms`` moves the filter in, ``ir_cut_pin_b``
    high moves it out; both low otherwise, because holding the coil energised heats it.

The pin factory is passed in explicitly (:func:`make_pin_factory`), never gpiozero's class-level
default, so tests and the simulation rig use ``MockFactory`` with PWM-capable mock pins and
assert on the pins' state histories.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Literal, get_args

from drivers.clock import Clock
from drivers.config_keys import setting
from drivers.errors import DriverError
from drivers.resource import Closing

log = logging.getLogger(__name__)

PinFactoryKind = Literal["mock", "lgpio", "rpigpio", "pigpio", "native"]


class IlluminatorError(DriverError):
    """GPIO unavailable or a pin cannot be driven."""


@dataclass(frozen=True)
class IlluminatorSettings:
    """Config section ``[illuminator]``: pins and actuator, then the day/night decision.

    Pins are BCM numbers 0..27. ``pwm_hz`` 100..40000. ``night_led_level`` 0..1.
    ``ir_cut_pulse_ms`` 20..1000. Day/night (see :mod:`firmware.pipeline.daynight`):
    ``night_below`` and ``day_above`` are scene-brightness thresholds (mean luma 0..255 of a
    frame, exposure-normalised when the camera reports exposure and gain) with
    ``night_below < day_above`` (the gap is the hysteresis); a change must persist
    ``confirm_s`` (0..600) and the previous mode must have lasted ``min_dwell_s`` (0..3600);
    brightness is sampled every ``sample_interval_s`` (0.1..60).
    """

    enabled: bool = setting(True, doc="Drive the IR LEDs and IR-cut filter.")
    pin_factory: PinFactoryKind = setting(
        "lgpio", choices=get_args(PinFactoryKind),
        doc="gpiozero pin backend; mock = simulated pins (simulation rig).")
    ir_led_pin: int = setting(18, min=0, max=27, doc="BCM pin of the IR LED driver (PWM).")
    pwm_hz: int = setting(1000, min=100, max=40000)
    night_led_level: float = setting(1.0, min=0.0, max=1.0)
    ir_cut_mode: Literal["level", "pulse"] = setting(
        "level", choices=("level", "pulse"),
        doc="level = one pin held; pulse = H-bridge pulsed on two pins.")
    ir_cut_pin: int = setting(23, min=0, max=27)
    ir_cut_pin_b: int = setting(24, min=0, max=27)
    ir_cut_active_high: bool = setting(True)
    ir_cut_pulse_ms: int = setting(100, min=20, max=1000)
    night_below: float = setting(40.0, min=0.0, max=255.0,
                                 doc="Scene brightness (mean luma, exposure-normalised) below "
                                 "which night mode starts.")
    day_above: float = setting(90.0, min=0.0, max=255.0)
    confirm_s: float = setting(5.0, min=0.0, max=600.0, doc="A change must persist this long.")
    min_dwell_s: float = setting(60.0, min=0.0, max=3600.0,
                                 doc="Least time in one mode before switching back.")
    sample_interval_s: float = setting(1.0, min=0.1, max=60.0)
    reference_exposure_us: int = setting(2000, min=50, max=100000)

    def __post_init__(self) -> None:
        # Cross-field rules that a per-key range check cannot express.
        if not self.night_below < self.day_above:
            raise ValueError(
                f"night_below ({self.night_below}) must be below day_above ({self.day_above})"
            )
        pins = [self.ir_led_pin, self.ir_cut_pin]
        if self.ir_cut_mode == "pulse":
            pins.append(self.ir_cut_pin_b)
        if len(set(pins)) != len(pins):
            raise ValueError(f"illuminator pins must be distinct, got {pins}")
        if not 0.0 <= self.night_led_level <= 1.0:
            raise ValueError(f"night_led_level must be in 0..1, got {self.night_led_level}")


def make_pin_factory(kind: PinFactoryKind) -> Any:
    """A gpiozero pin factory. ``mock`` simulates pins (with PWM) and keeps state histories."""
    try:
        if kind == "mock":
            from gpiozero.pins.mock import MockFactory, MockPWMPin  # type: ignore[import-untyped]

            return MockFactory(pin_class=MockPWMPin)
        if kind == "lgpio":
            from gpiozero.pins.lgpio import LGPIOFactory  # type: ignore[import-untyped]

            return LGPIOFactory()
        if kind == "rpigpio":
            from gpiozero.pins.rpigpio import RPiGPIOFactory  # type: ignore[import-untyped]

            return RPiGPIOFactory()
        if kind == "pigpio":
            from gpiozero.pins.pigpio import PiGPIOFactory  # type: ignore[import-untyped]

            return PiGPIOFactory()
        if kind == "native":
            from gpiozero.pins.native import NativeFactory  # type: ignore[import-untyped]

            return NativeFactory()
    except Exception as e:  # ImportError, or the library failing to reach /dev/gpiochip*
        raise IlluminatorError(f"GPIO pin factory {kind!r} unavailable: {e}") from e
    raise IlluminatorError(f"unknown pin factory {kind!r}")


class Illuminator(Closing):
    """Drives the LED bank and the IR-cut filter. Thread-safe; ``close()`` switches LEDs off."""

    def __init__(self, settings: IlluminatorSettings, pin_factory: Any, clock: Clock) -> None:
        from gpiozero import DigitalOutputDevice, PWMOutputDevice  # type: ignore[import-untyped]

        self._s = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._devices: list[Any] = []
        self._cut_in: bool | None = None
        try:
            self._led = PWMOutputDevice(
                settings.ir_led_pin,
                initial_value=0.0,
                frequency=settings.pwm_hz,
                pin_factory=pin_factory,
            )
            self._devices.append(self._led)
            if settings.ir_cut_mode == "level":
                self._cut_a = DigitalOutputDevice(
                    settings.ir_cut_pin,
                    active_high=settings.ir_cut_active_high,
                    initial_value=False,
                    pin_factory=pin_factory,
                )
                self._devices.append(self._cut_a)
                self._cut_b = None
            else:
                self._cut_a = DigitalOutputDevice(
                    settings.ir_cut_pin, initial_value=False, pin_factory=pin_factory
                )
                self._devices.append(self._cut_a)
                self._cut_b = DigitalOutputDevice(
                    settings.ir_cut_pin_b, initial_value=False, pin_factory=pin_factory
                )
                self._devices.append(self._cut_b)
        except Exception as e:  # gpiozero's GPIOZeroError tree, or OSError from the chip
            self.close()
            raise IlluminatorError(f"cannot set up illuminator pins: {e}") from e

    @property
    def ir_led_level(self) -> float:
        with self._lock:
            return float(self._led.value)

    @property
    def ir_cut_in(self) -> bool | None:
        """True = filter in front of the sensor (day); None = not driven since start (pulse)."""
        with self._lock:
            return self._cut_in

    def set_ir_led(self, level: float) -> None:
        if not 0.0 <= level <= 1.0:
            raise IlluminatorError(f"IR LED level {level} outside 0..1")
        with self._lock:
            try:
                self._led.value = level
            except Exception as e:
                raise IlluminatorError(f"IR LED pin failed: {e}") from e

    def set_ir_cut(self, filter_in: bool) -> None:
        with self._lock:
            try:
                if self._cut_b is None:
                    self._cut_a.value = filter_in
                else:
                    # Bistable: one short pulse on the side that moves the filter, then coast.
                    pin = self._cut_a if filter_in else self._cut_b
                    pin.on()
                    try:
                        self._clock.sleep(self._s.ir_cut_pulse_ms / 1000.0)
                    finally:
                        pin.off()
            except IlluminatorError:
                raise
            except Exception as e:
                raise IlluminatorError(f"IR-cut pin failed: {e}") from e
            self._cut_in = filter_in

    def describe(self) -> dict[str, Any]:
        return {
            "ir_led_level": self.ir_led_level,
            "ir_cut_in": self.ir_cut_in,
            "ir_cut_mode": self._s.ir_cut_mode,
        }

    def close(self) -> None:
        with self._lock:
            for dev in reversed(self._devices):
                try:
                    dev.close()  # gpiozero returns the pin to input: LEDs off, coil idle
                except Exception as e:  # noqa: BLE001 - release every pin even if one fails
                    log.warning("illuminator pin close failed", extra={"error": str(e)})
            self._devices.clear()
