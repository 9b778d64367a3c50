from __future__ import annotations

import itertools
import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.camera import Frame
from drivers.clock import FakeClock
from drivers.illuminator import (
    Illuminator,
    IlluminatorError,
    IlluminatorSettings,
    make_pin_factory,
)
from firmware.pipeline.daynight import (
    IlluminationController,
    IllumState,
    Mode,
    SetIrCut,
    SetIrLed,
    decide,
    frame_brightness,
    initial,
)

S = IlluminatorSettings(night_below=40, day_above=90, confirm_s=5, min_dwell_s=60)


def states(pin: Any) -> list[Any]:
    return [s.state for s in pin.states]


# --- the pure policy ------------------------------------------------------------------------


def test_initial_mode_from_first_sample() -> None:
    assert initial(20, 0, S)[0].mode is Mode.NIGHT
    assert initial(120, 0, S)[0].mode is Mode.DAY
    assert initial(20, 0, S)[1] == (SetIrCut(False), SetIrLed(1.0))
    assert initial(120, 0, S)[1] == (SetIrLed(0.0), SetIrCut(True))


def test_needs_confirmation_and_dwell() -> None:
    st0 = IllumState(Mode.DAY, since_s=0.0)
    s1, a1 = decide(st0, 10, 100.0, S)  # dark, first seen
    assert a1 == () and s1.mode is Mode.DAY and s1.pending_since_s == 100.0
    s2, a2 = decide(s1, 10, 104.0, S)
    assert a2 == ()
    s3, a3 = decide(s2, 10, 105.0, S)
    assert s3.mode is Mode.NIGHT and a3 == (SetIrCut(False), SetIrLed(1.0))
    # back to bright right away: the dwell time holds night
    s4, a4 = decide(s3, 200, 110.0, S)
    s5, a5 = decide(s4, 200, 120.0, S)
    assert s5.mode is Mode.NIGHT and a4 == a5 == ()
    s6, a6 = decide(s5, 200, 166.0, S)
    assert s6.mode is Mode.DAY and a6 == (SetIrLed(0.0), SetIrCut(True))


def test_a_flash_resets_the_confirmation() -> None:
    st0 = IllumState(Mode.DAY, since_s=0.0)
    s1, _ = decide(st0, 10, 100.0, S)
    s2, _ = decide(s1, 60, 103.0, S)  # inside the band: not dark any more
    assert s2.pending_since_s is None
    s3, a3 = decide(s2, 10, 106.0, S)
    assert a3 == () and s3.mode is Mode.DAY


def test_inside_the_band_never_switches() -> None:
    s = IllumState(Mode.NIGHT, since_s=0.0)
    for t in range(0, 1000, 5):
        s, a = decide(s, 80, float(t), S)
        assert a == () and s.mode is Mode.NIGHT


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 255), min_size=1, max_size=200))
def test_property_switches_are_never_closer_than_the_dwell(levels: list[float]) -> None:
    s, _ = initial(levels[0], 0.0, S)
    switch_times = [0.0]
    for i, b in enumerate(levels[1:], start=1):
        t = i * 3.0
        new, actions = decide(s, b, t, S)
        if new.mode is not s.mode:
            switch_times.append(t)
            assert actions
        s = new
    assert all(b - a >= S.min_dwell_s for a, b in itertools.pairwise(switch_times))


def test_brightness_is_exposure_normalised() -> None:
    img = np.full((64, 64, 3), 100, np.uint8)
    plain = Frame(img, 0, 0.0)
    assert frame_brightness(plain, 2000) == pytest.approx(100, abs=0.01)
    dusk = Frame(img, 0, 0.0, exposure_us=2000, gain=8.0)
    assert frame_brightness(dusk, 2000) == pytest.approx(12.5, abs=0.01)


# --- the driver on mock pins ----------------------------------------------------------------


def test_level_mode_pins() -> None:
    factory = make_pin_factory("mock")
    clock = FakeClock()
    with Illuminator(S, factory, clock) as ill:
        ill.set_ir_led(0.5)
        ill.set_ir_cut(True)
        ill.set_ir_cut(False)
        led = factory.pin(S.ir_led_pin)
        cut = factory.pin(S.ir_cut_pin)
        assert states(led)[-1] == 0.5
        assert states(cut)[-2:] == [True, False]
        assert ill.ir_cut_in is False and ill.ir_led_level == 0.5
        with pytest.raises(IlluminatorError):
            ill.set_ir_led(1.5)
    assert led.function == "input"  # closed: pins released


def test_pulse_mode_pulses_one_side_then_coasts() -> None:
    s = IlluminatorSettings(ir_cut_mode="pulse", ir_cut_pulse_ms=120)
    factory = make_pin_factory("mock")
    clock = FakeClock()
    with Illuminator(s, factory, clock) as ill:
        assert ill.ir_cut_in is None
        t0 = clock.monotonic()
        ill.set_ir_cut(True)
        assert clock.monotonic() - t0 == pytest.approx(0.12)
        ill.set_ir_cut(False)
        a, b = factory.pin(s.ir_cut_pin), factory.pin(s.ir_cut_pin_b)
        assert states(a) == [False, True, False]
        assert states(b) == [False, True, False]
        assert not a.state and not b.state  # never left energised


def test_pin_in_use_is_an_illuminator_error() -> None:
    factory = make_pin_factory("mock")
    with Illuminator(S, factory, FakeClock()), pytest.raises(IlluminatorError):
        Illuminator(S, factory, FakeClock())


def test_settings_cross_field_rules() -> None:
    with pytest.raises(ValueError):
        IlluminatorSettings(ir_led_pin=23, ir_cut_pin=23)
    with pytest.raises(ValueError):
        IlluminatorSettings(ir_cut_mode="pulse", ir_cut_pin_b=18)
    with pytest.raises(ValueError):
        IlluminatorSettings(night_below=90, day_above=90)
    with pytest.raises(ValueError):
        IlluminatorSettings(night_led_level=1.2)


def test_unknown_or_missing_factory() -> None:
    with pytest.raises(IlluminatorError):
        make_pin_factory("nope")  # type: ignore[arg-type]


# --- the controller end to end on mock pins ------------------------------------------------


def _frame(level: int) -> Frame:
    return Frame(np.full((72, 128, 3), level, np.uint8), 0, 0.0)


def test_controller_follows_dusk_and_dawn_on_pins() -> None:
    factory = make_pin_factory("mock")
    clock = FakeClock()
    s = IlluminatorSettings(confirm_s=5, min_dwell_s=5, sample_interval_s=1.0, night_led_level=0.8)
    with Illuminator(s, factory, clock) as ill:
        ctl = IlluminationController(ill, clock, s)
        modes = []
        for level in [150] * 10 + [15] * 40 + [200] * 40:
            for _ in range(10):  # 10 fps: only one sample a second is taken
                modes.append(ctl.observe_frame(_frame(level)))
                clock.advance(0.1)
        assert modes[0] is Mode.DAY and modes[-1] is Mode.DAY
        assert Mode.NIGHT in modes and ctl.switches == 2
        led = states(factory.pin(s.ir_led_pin))
        cut = states(factory.pin(s.ir_cut_pin))
        assert 0.8 in led and led[-1] == 0.0
        assert cut[-1] == 1 and 0 in cut[1:]
    # dusk came ~5 s after the light dropped (confirmation), not on the first dark frame
    first_night = modes.index(Mode.NIGHT)
    assert 150 <= first_night <= 165


def test_controller_run_with_a_sensor() -> None:
    factory = make_pin_factory("mock")
    clock = FakeClock()
    s = IlluminatorSettings(sample_interval_s=0.01)
    with Illuminator(s, factory, clock) as ill:
        ctl = IlluminationController(ill, clock, s)
        stop = threading.Event()
        calls = []

        def sensor() -> float:
            calls.append(1)
            if len(calls) >= 3:
                stop.set()
            return 5.0

        ctl.run(stop, sensor)
        assert ctl.mode is Mode.NIGHT and len(calls) == 3
