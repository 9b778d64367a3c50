"""The modem supervisor: a firmware worker over the modem driver (``drivers.modem``).

It polls the modem, reports registration and signal to the link state machine, and climbs the
recovery ladder while the link stays ``down``: re-register, then cycle the radio, then (with a
power switch) cut the supply; afterwards power cycles repeat every ``power_cycle_repeat_s``. A
modem that stops answering AT commands is power-cycled too. The ladder itself is a pure step
function, :func:`next_recovery`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from drivers.clock import Clock
from drivers.modem import Modem, ModemError, ModemSettings, ModemStatus, ModemTimeout, PowerSwitch

log = logging.getLogger(__name__)


class RecoveryAction(StrEnum):
    REREGISTER = "reregister"
    RADIO_CYCLE = "radio_cycle"
    POWER_CYCLE = "power_cycle"


@dataclass(frozen=True)
class LadderState:
    done: tuple[RecoveryAction, ...] = ()
    last_power_cycle_at: float | None = None


def next_recovery(
    state: LadderState, down_for_s: float | None, now: float, s: ModemSettings,
    power_available: bool,
) -> tuple[LadderState, RecoveryAction | None]:
    """Which step is due. ``down_for_s`` None means the link is not down: the ladder resets.

    Each rung is climbed once per outage, in order; then power cycles repeat every
    ``power_cycle_repeat_s`` (a dead modem is power-cycled hourly, not in a tight loop).
    """
    if down_for_s is None:
        return LadderState(), None
    rungs = [
        (RecoveryAction.REREGISTER, s.reregister_after_s),
        (RecoveryAction.RADIO_CYCLE, s.radio_cycle_after_s),
    ]
    if power_available:
        rungs.append((RecoveryAction.POWER_CYCLE, s.power_cycle_after_s))
    for action, after in rungs:
        if action not in state.done:
            if down_for_s >= after:
                st = replace(state, done=(*state.done, action))
                if action is RecoveryAction.POWER_CYCLE:
                    st = replace(st, last_power_cycle_at=now)
                return st, action
            return state, None
    if (
        power_available
        and state.last_power_cycle_at is not None
        and now - state.last_power_cycle_at >= s.power_cycle_repeat_s
    ):
        return replace(state, last_power_cycle_at=now), RecoveryAction.POWER_CYCLE
    return state, None


@dataclass(frozen=True)
class ModemSupervisorStatus:
    """The modem as `vigil status` shows it (``as_dict()`` is the JSON view)."""

    last: ModemStatus | None  # None until the first successful poll
    unresponsive_polls: int
    recovery_actions: tuple[tuple[str, str], ...]  # the last ten (action, result)

    def as_dict(self) -> dict[str, Any]:
        s = self.last
        return {
            "sim": s.sim.value if s else None,
            "registration": s.registration.name.lower() if s else None,
            "operator": s.operator if s else None,
            "signal_dbm": s.signal.rssi_dbm if s and s.signal else None,
            "iccid": s.iccid if s else None,
            "imei": s.imei if s else None,
            "unresponsive_polls": self.unresponsive_polls,
            "recovery_actions": [{"action": a, "result": r} for a, r in self.recovery_actions],
        }


class LinkView(Protocol):
    """What the supervisor needs of ``firmware.link.state.LinkStateMachine``."""

    @property
    def state(self) -> Any: ...
    def seconds_in_state(self) -> float: ...
    def on_modem(self, registered: bool, signal_dbm: int | None) -> Any: ...


@dataclass
class _SupervisorStats:
    polls: int = 0
    unresponsive: int = 0
    actions: list[tuple[float, str, str]] = field(default_factory=list)  # (mono, action, result)


class ModemSupervisor:
    """Polls the modem, reports to the link state, and climbs the recovery ladder while the
    link stays ``down``. Also power-cycles a modem that stops answering AT commands."""

    def __init__(
        self,
        modem: Modem,
        link: LinkView,
        settings: ModemSettings,
        clock: Clock,
        power: PowerSwitch | None = None,
    ) -> None:
        self.modem = modem
        self.link = link
        self.settings = settings
        self._clock = clock
        self._power = power
        self._ladder = LadderState()
        self._initialised = False
        self.last_status: ModemStatus | None = None
        self.stats = _SupervisorStats()
        self._lock = threading.Lock()

    def run(self, stop_event: threading.Event) -> None:
        while not stop_event.is_set():
            delay = self.step()
            stop_event.wait(delay)

    def _down_for(self) -> float | None:
        st = getattr(self.link.state, "value", self.link.state)
        return self.link.seconds_in_state() if st == "down" else None

    def step(self) -> float:
        """One poll (and recovery action if due). Returns seconds until the next poll."""
        now = self._clock.monotonic()
        self.stats.polls += 1
        try:
            if not self._initialised:
                self.modem.init()
                self._initialised = True
            status = self.modem.status()
        except ModemTimeout:
            self.stats.unresponsive += 1
            self._initialised = False
            log.warning("modem not answering", extra={"unresponsive": self.stats.unresponsive})
            self.link.on_modem(False, None)
            if (
                self._power is not None
                and self.stats.unresponsive >= self.settings.unresponsive_polls_to_power_cycle
            ):
                self._act(RecoveryAction.POWER_CYCLE, now)
                self.stats.unresponsive = 0
                self._ladder = replace(self._ladder, last_power_cycle_at=now)
                return self.settings.boot_wait_s
            return self.settings.poll_interval_s
        except ModemError as e:
            log.warning("modem poll failed: %s", e)
            return self.settings.poll_interval_s
        self.stats.unresponsive = 0
        with self._lock:
            self.last_status = status
        self.link.on_modem(status.registered, status.signal.rssi_dbm if status.signal else None)
        self._ladder, action = next_recovery(
            self._ladder, self._down_for(), now, self.settings, self._power is not None
        )
        if action is not None:
            self._act(action, now)
            if action is RecoveryAction.POWER_CYCLE:
                return self.settings.boot_wait_s
        return self.settings.poll_interval_s

    def _act(self, action: RecoveryAction, now: float) -> None:
        log.warning("modem recovery: %s", action.value, extra={"action": action.value})
        result = "ok"
        try:
            if action is RecoveryAction.REREGISTER:
                self.modem.reregister()
            elif action is RecoveryAction.RADIO_CYCLE:
                self.modem.radio_cycle()
            else:
                assert self._power is not None
                self._power.power_cycle(self.settings.power_off_s)
                self._initialised = False
        except ModemError as e:
            result = f"failed: {e}"
            log.error("modem recovery %s failed: %s", action.value, e)
        self.stats.actions.append((now, action.value, result))

    def status(self) -> ModemSupervisorStatus:
        with self._lock:
            s = self.last_status
        return ModemSupervisorStatus(s, self.stats.unresponsive,
                                     tuple((a, r) for _, a, r in self.stats.actions[-10:]))
