"""The daemon's OTA worker: check, download, verify, stage, switch; and the health gate.

One supervised, non-essential thread. Every step is written to the audit chain and shown in
``vigil status`` (``ota``) and the console; the trust decisions are :mod:`ota.client` (TUF) and
:mod:`ota.policy`, the slot moves are :mod:`ota.slotfs`, the gate verdict is :func:`gate`
(pure). The worker never touches the running slot, and it asks the daemon to restart (exit 75,
``RestartForceExitStatus=75`` in the unit) only after a switch or a rollback has been made
durable on disk.

While a version is on trial, the worker of *that* version runs the gate: READY (the self-test
passed), frames flowing, a read (if ``require_read``) and the uplink reachable if it was before
the switch, all holding for ``gate_hold_s``, within the deadline counted from the switch. A
version too broken to run its own gate is caught by ``vigil ota boot`` (ExecStartPre, from the
committed slot) at its next start: the boot limit (crash loop) or the deadline rolls it back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from drivers.clock import Clock
from ota import install
from ota.client import UpdateClient
from ota.errors import BundleRefused, DownloadFailed, OtaError, RepositoryRefused
from ota.events import KEEP, EventLog, OtaEvent
from ota.fetch import ByteBudget, DirTransport, HttpTransport, Transport
from ota.policy import Action, Offer, UnitFacts, decide
from ota.settings import OtaSettings
from ota.slotfs import SlotFS
from ota.slots import (
    HealthFailed,
    HealthPassed,
    Phase,
    Report,
    Restart,
    SlotState,
    Switch,
)
from ota.whole_image import RaucHook

log = logging.getLogger(__name__)

__all__ = ["EX_RESTART", "HealthSample", "OtaSettings", "OtaStatus", "OtaWorker", "gate"]

#: Download progress goes upstream in steps of this many percent (not every chunk).
UPSTREAM_PROGRESS_STEP = 10

#: The exit status that asks systemd for a restart on the (now switched) slot.
EX_RESTART = 75


@dataclass(frozen=True)
class HealthSample:
    """What the daemon says about itself, for the gate."""

    ready: bool
    fps: float
    reads: int
    uplink_ok: bool | None  # None: no uplink configured


def gate(sample: HealthSample, settings: OtaSettings, uplink_was_ok: bool) -> list[str]:
    """What is still missing for a healthy verdict (empty: healthy now). Pure."""
    missing = []
    if not sample.ready:
        missing.append("READY (self-test)")
    if sample.fps < settings.gate_min_fps:
        missing.append(f"frames ({sample.fps:.1f} fps)")
    if settings.require_read and sample.reads < 1:
        missing.append("a read")
    if uplink_was_ok and sample.uplink_ok is False:
        missing.append("uplink (reachable before the switch)")
    return missing


@dataclass
class OtaProgress:
    """What the worker is doing, updated as it goes (``OtaWorker.status()`` reports a copy)."""

    step: str = "idle"
    detail: str = ""
    progress_pct: float | None = None
    last_check_utc: str | None = None
    last_error: str | None = None
    events: list[OtaEvent] = field(default_factory=list)  # the journal (ota.events), cached


@dataclass(frozen=True)
class OtaStatus:
    """The OTA worker as `vigil status` shows it (``as_dict()`` is the JSON view)."""

    step: str
    detail: str
    progress_pct: float | None
    last_check: str | None
    last_error: str | None
    history: tuple[dict[str, str], ...]  # the last five steps: {"at", "step", "detail"}
    bytes_today: int
    slots: SlotState | None  # None while the slot state cannot be read

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "step": self.step, "detail": self.detail, "progress_pct": self.progress_pct,
            "last_check": self.last_check, "last_error": self.last_error,
            "history": [dict(h) for h in self.history], "bytes_today": self.bytes_today}
        state = self.slots
        if state is not None:
            out.update({"slot": state.active, "phase": state.phase.value,
                        "version": state.running_version, "committed_slot": state.committed,
                        "floor": state.floor, "last": state.last,
                        "trial_boots": state.trial_boots})
        return out


Audit = Callable[[str, str, str, dict[str, Any]], None]


class OtaWorker:
    def __init__(self, settings: OtaSettings, root: Path, unit_id: str, clock: Clock, *,
                 health: Callable[[], HealthSample], request_restart: Callable[[str], None],
                 audit: Audit, alert_pending: Callable[[], bool] = lambda: False,
                 check_models: install.ModelCheck | None = None,
                 transport: Transport | None = None, running_version: str = "0",
                 whole_image: RaucHook | None = None,
                 on_change: Callable[[], None] | None = None, installer: bool = False) -> None:
        self.settings = settings
        self.fs = SlotFS(root)
        self.unit_id = unit_id
        self.clock = clock
        self.health = health
        self.request_restart = request_restart
        self.audit = audit
        self.alert_pending = alert_pending
        self.check_models = check_models
        self.running_version = running_version
        # An installer at the unit (``vigil ota install-usb``): the same trust checks, floor and
        # downgrade rules, but no scheduling (rollout share, window, pending alert).
        self.installer = installer
        self.journal = EventLog(root)
        self._status = OtaProgress(events=self.journal.load())
        self._lock = threading.Lock()
        # The upstream report (see upstream()): what was last acknowledged by the agency.
        self.on_change = on_change or (lambda: None)
        self._delivered_seq = 0
        self._delivered_view: dict[str, Any] | None = None
        self._wake = threading.Event()
        repo = settings.repository
        local = not repo.startswith(("http://", "https://"))
        self.transport = transport or (DirTransport() if local else HttpTransport(
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s))
        self.budget = ByteBudget(settings.daily_bytes_cap, 86_400.0, clock.monotonic)
        self.client = UpdateClient(repo, root / "tuf", Path(settings.trusted_root).read_bytes(),
                                   self.transport, self.budget)
        self.whole_image = whole_image
        self.poll_s = 0.5  # how often the health gate looks at the daemon

    # ---- status ----------------------------------------------------------------------------
    def _report(self, step: str, detail: str = "", *, result: str = "ok",
                progress: float | None = None, audit: bool = True) -> None:
        with self._lock:
            s = self._status
            s.step, s.detail, s.progress_pct = step, detail, progress
            if result != "ok":
                s.last_error = detail
            if audit:
                try:
                    s.events = [*s.events, self.journal.append(
                        self.clock.utcnow(), step, detail, result,
                        audited=not self.installer)][-KEEP:]
                except OSError as e:  # a full disk must not stop the update's own steps
                    log.warning("OTA step journal not written: %s", e)
        if audit:
            log.info("ota %s", step, extra={"ota_step": step, "detail": detail})
            self.audit(f"ota.{step}", detail[:200], result, {"detail": detail})
        self.on_change()

    def upstream(self) -> dict[str, Any] | None:
        """The OTA part of the unit's status report to the agency (the uplink's ``POST
        /v1/status``), or None when nothing changed since the last one it acknowledged: the
        slot state, the current step, download progress in steps of
        :data:`UPSTREAM_PROGRESS_STEP` %, and every journal step not yet acknowledged."""
        st = self.status().as_dict()
        pct = st.pop("progress_pct")
        view = {k: v for k, v in st.items() if k not in ("history", "bytes_today", "detail",
                                                          "last_check")}
        if pct is not None:
            view["progress_pct"] = int(pct // UPSTREAM_PROGRESS_STEP * UPSTREAM_PROGRESS_STEP)
        with self._lock:
            events = [e.as_dict() for e in self._status.events if e.seq > self._delivered_seq]
            if not events and view == self._delivered_view:
                return None
        return {**view, "events": events}

    def delivered(self, report: dict[str, Any]) -> None:
        """The agency acknowledged ``report`` (an :meth:`upstream` result)."""
        with self._lock:
            seqs = [int(e["seq"]) for e in report.get("events", [])]
            if seqs:
                self._delivered_seq = max(seqs)
            self._delivered_view = {k: v for k, v in report.items() if k != "events"}

    def status(self) -> OtaStatus:
        state = self._state_or_none()
        with self._lock:
            s = self._status
            history = tuple({"at": e.at, "step": e.step, "detail": e.detail}
                            for e in s.events[-5:])
            return OtaStatus(s.step, s.detail, s.progress_pct, s.last_check_utc, s.last_error,
                             history, self.budget.used_bytes, state)

    def check_now(self) -> None:
        self._wake.set()

    def close(self) -> None:
        self.transport.close()

    def _state_or_none(self) -> SlotState | None:
        try:
            return self.fs.load()
        except OtaError:
            return None

    def _state(self) -> SlotState:
        state = self.fs.load()
        if state is None:
            state = self.fs.init(self.running_version)
            self._report("initialised", f"slot a holds {self.running_version}")
        return state

    # ---- the loop --------------------------------------------------------------------------
    def _audit_outside_steps(self) -> None:
        """Copy the steps taken outside the daemon (a rollback by ``vigil ota boot``, an
        installer's ``install-usb``) into the audit chain. At least once: a crash between the
        audit and the journal's rewrite audits them again at the next start."""
        pending = [e for e in self._status.events if not e.audited]
        for e in pending:
            self.audit(f"ota.{e.step}", e.detail[:200], e.result,
                       {"detail": e.detail, "at": e.at, "seq": e.seq, "outside_daemon": True})
        if pending:
            try:
                events = self.journal.mark_audited()
            except OSError as err:
                log.warning("OTA step journal not rewritten: %s", err)
                return
            with self._lock:
                self._status.events = events

    def run(self, stop: threading.Event) -> None:
        self._audit_outside_steps()
        state = self._state()
        if state.phase is Phase.TRIAL:
            self._trial(stop, state)
            state = self._state()
        if "rolled back" in state.last and self._status.step == "idle":
            self._report("rolled_back", state.last, result="failed", audit=False)
        if state.phase is Phase.IDLE:
            self._whole_image(stop)
        while not stop.is_set():
            self._check_once(stop)
            self._wake.clear()
            deadline = self.clock.monotonic() + self.settings.check_interval_s
            look = self.clock.monotonic()
            while not stop.is_set() and not self._wake.is_set():
                if self.clock.monotonic() >= deadline:
                    break
                if self.clock.monotonic() - look >= 2.0:
                    look = self.clock.monotonic()
                    self._switched_elsewhere()
                stop.wait(0.5)

    def _switched_elsewhere(self) -> None:
        """An installer switched the slots under this running version (``vigil ota
        install-usb``): restart into the version on trial now, its deadline is running."""
        state = self._state_or_none()
        if (state is not None and state.phase is Phase.TRIAL
                and state.target_version != self.running_version):
            self.request_restart(f"switched to {state.target_version} by an installer")

    def install_now(self, stop: threading.Event) -> OtaStatus:
        """One check and install, now (the installer's offline update); the status says what
        happened (``trial``: switched, the service must restart into it)."""
        self._check_once(stop)
        return self.status()

    def _wait_healthy(self, stop: threading.Event, elapsed_s: Callable[[], float],
                      deadline_s: float, uplink_was_ok: bool) -> str | None:
        """Block until the gate holds for ``gate_hold_s`` (None) or the deadline passes (why).
        Returns None as well when stopped (the verdict is left to the next start)."""
        healthy_since: float | None = None
        while not stop.is_set():
            missing = gate(self.health(), self.settings, uplink_was_ok)
            now = self.clock.monotonic()
            if not missing:
                healthy_since = healthy_since if healthy_since is not None else now
                if now - healthy_since >= self.settings.gate_hold_s:
                    return None
            else:
                healthy_since = None
            if elapsed_s() > deadline_s:
                return (f"health gate not passed within {deadline_s:g} s; missing: "
                        + ", ".join(missing or ["a steady healthy period"]))
            self._status.detail = "waiting for: " + ", ".join(missing) if missing else "holding"
            stop.wait(self.poll_s)
        return None

    def _trial(self, stop: threading.Event, state: SlotState) -> None:
        started = datetime.fromisoformat(str(state.trial_started_utc))
        self._report("trial", f"{state.target_version}: health gate, deadline "
                     f"{state.trial_deadline_s:g} s")
        why = self._wait_healthy(stop, lambda: (self.clock.utcnow() - started).total_seconds(),
                                 state.trial_deadline_s, state.uplink_was_ok)
        if stop.is_set():
            return
        event = HealthPassed("health gate passed") if why is None else HealthFailed(why)
        new, actions = self.fs.apply(state, event)
        self._after(new, actions)

    def _whole_image(self, stop: threading.Event) -> None:
        """RAUC (whole-image A/B): mark the booted image good or bad by the same gate."""
        if self.whole_image is None:
            return
        t0 = self.clock.monotonic()
        why = self._wait_healthy(stop, lambda: self.clock.monotonic() - t0,
                                 self.settings.trial_deadline_s, False)
        if stop.is_set():
            return
        try:
            done = self.whole_image.verdict(why)
        except OtaError as e:
            self._report("whole_image_error", str(e), result="failed")
            return
        if done:
            self._report("whole_image", done, result="ok" if why is None else "failed")

    def _after(self, state: SlotState, actions: tuple[Any, ...]) -> None:
        for a in actions:
            if isinstance(a, Report):
                self._report(a.step, a.detail,
                             result="failed" if a.step == "rolled_back" else "ok")
        for a in actions:
            if isinstance(a, Restart):
                self.request_restart(a.reason)

    def _check_once(self, stop: threading.Event) -> None:
        try:
            with self.fs.lock():
                self._check_locked(stop)
        except OtaError as e:  # the lock is held by the other installer
            self._report("busy", str(e), result="failed", audit=False)

    def _check_locked(self, stop: threading.Event) -> None:
        s = self.settings
        state = self._state()
        if state.phase is not Phase.IDLE:
            self._report("busy", f"the unit is in phase {state.phase.value}", audit=False)
            return
        self._report("checking", s.repository, audit=False)
        with self._lock:
            self._status.last_check_utc = self.clock.utcnow().isoformat(timespec="seconds")
        try:
            delta_name = f"{s.channel}/app-from-{state.running_version}.vdelta"
            offers = self.client.check([f"{s.channel}/app.vbundle",
                                        f"{s.channel}/model.vbundle", delta_name])
            delta = offers.pop(delta_name, None)
            offer = self._choose(state, offers)
            if offer is None:
                return
            if delta is not None and (delta.version != offer.version or offer.kind != "app"):
                delta = None
            self._install(stop, state, offer, delta)
        except RepositoryRefused as e:
            self._report("refused", str(e), result="refused")
        except DownloadFailed as e:
            self._report("download_failed", f"{e} (retried later)", result="failed")
        except BundleRefused as e:
            self._report("refused", str(e), result="refused")
        except OtaError as e:
            self._report("error", str(e), result="failed")

    def _choose(self, state: SlotState, offers: dict[str, Offer]) -> Offer | None:
        facts = UnitFacts(self.unit_id, state.running_version or "0", state.floor,
                          self.clock.utcnow(), self.alert_pending())
        chosen: Offer | None = None
        for offer in offers.values():
            if offer.version == state.bad_version:
                self._report("skipped", f"{offer.version} was rolled back before", audit=False)
                continue
            d = decide(offer, facts)
            if d.action is Action.REFUSE:
                self._report("refused", f"{offer.target}: {d.reason}", result="refused")
            elif d.action is Action.DEFER and not self.installer:
                self._report("deferred", f"{offer.target}: {d.reason}", audit=False)
            elif d.action in (Action.INSTALL, Action.DEFER) and (chosen is None
                                                                 or offer.kind == "app"):
                chosen = offer
        if chosen is None and self._status.step == "checking":
            self._report("up_to_date", state.running_version or "", audit=False)
        return chosen

    def _download(self, stop: threading.Event, offer: Offer) -> Path:
        self._report("downloading", f"{offer.target} {offer.version} ({offer.length} bytes)",
                     progress=0.0)

        def progress(have: int, total: int) -> None:
            pct = round(100.0 * have / max(total, 1), 1)
            with self._lock:
                before = self._status.progress_pct or 0.0
                self._status.progress_pct = pct
                self._status.detail = f"{offer.version}: {have}/{total} bytes"
            if pct // UPSTREAM_PROGRESS_STEP != before // UPSTREAM_PROGRESS_STEP:
                self.on_change()

        path = self.client.fetch(offer, self.fs.root / "downloads", progress, stop)
        self._report("verified", f"{offer.target}: length and SHA-256 match the signed "
                     "targets metadata")
        return path

    def _via_delta(self, stop: threading.Event, state: SlotState, delta: Offer) -> Path | None:
        """The new bundle's tar from a delta against the running slot, or None (use full)."""
        from ota.delta import apply_delta

        try:
            patch = self._download(stop, delta)
            out = apply_delta(self.fs.slot_dir(state.active), patch,
                              self.fs.root / "downloads" / f"{delta.version}.tar",
                              dict(delta.fields))
            patch.unlink(missing_ok=True)
            self._report("delta_applied", f"{delta.version} rebuilt from "
                         f"{state.running_version} + {delta.length} bytes")
            return out
        except (BundleRefused, RepositoryRefused, KeyError, ValueError) as e:
            self._report("delta_failed", f"{e}; taking the full bundle", result="failed")
            return None

    def _install(self, stop: threading.Event, state: SlotState, offer: Offer,
                 delta: Offer | None = None) -> None:
        path = self._via_delta(stop, state, delta) if delta is not None else None
        if path is None:
            path = self._download(stop, offer)
        state = install.stage(self.fs, state, path, check_models=self.check_models)
        path.unlink(missing_ok=True)
        self._report("staged", f"{offer.version} in slot {state.inactive}")
        if not self.settings.auto_switch:
            return
        sample = self.health()
        new, actions = self.fs.apply(state, Switch(
            self.clock.utcnow(), uplink_ok=bool(sample.uplink_ok),
            deadline_s=self.settings.trial_deadline_s, max_boots=self.settings.trial_max_boots))
        self._after(new, actions)
