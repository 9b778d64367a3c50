"""`vigil run`: wiring, self-test, the systemd contract, signals, and shutdown order.

Start-up order: validate config (already done by the CLI) -> open the store -> load the models ->
open the camera and take one frame (the self-test) -> start the supervised workers -> READY=1.
Shutdown order (SIGTERM): stop accepting frames -> the pipeline drains open tracks into the
store -> the uplink abandons its in-flight batch unmarked (it is resent later) -> close the
store -> STOPPING=1 -> exit 0, all within systemd's 5 s TimeoutStopSec.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.clock import Clock, SystemClock
from drivers.errors import DriverError, VigilError
from firmware import audit_journal, config
from firmware.app import logsetup, malloc_tuning
from firmware.app.health import Heartbeat, cpu_temperature_c, disk_usage
from firmware.app.notify import Notifier, watchdog_interval_s
from firmware.app.status import DaemonStatus, degraded_reasons
from firmware.app.supervisor import Supervisor
from firmware.app.wiring import Components, Worker, build_components, build_workers, open_store
from firmware.console.control import ControlServer, Handler
from firmware.errors import ConfigError, SelfTestError
from firmware.pipeline.frame_loop import Pipeline
from firmware.version import VERSION

__all__ = ["LIVE_SECTIONS", "VERSION", "Components", "Daemon", "build", "control_socket_path",
           "open_store", "run_daemon"]

log = logging.getLogger(__name__)

#: Sections a SIGHUP applies at once; the others are applied at the next start.
LIVE_SECTIONS = frozenset({"logging", "inference", "watchdog"})


def control_socket_path(settings: config.Settings) -> Path:
    return Path(settings.status.socket)


def _factory_of(worker: Worker) -> Callable[[], Callable[[threading.Event], None]]:
    return lambda: worker.run


def build(settings: config.Settings, clock: Clock | None = None, **overrides: Any) -> Components:
    """The wiring function: every component from config, any of them replaceable by keyword."""
    return build_components(settings, clock or SystemClock(), **overrides)


class Daemon:
    def __init__(self, components: Components, notifier: Notifier | None = None) -> None:
        self.c = components
        self.settings = components.settings
        self.clock = components.clock
        self.notifier = notifier or Notifier()
        self.heartbeat = Heartbeat(self.clock)
        self.supervisor = Supervisor(self.clock, self.settings.supervisor)
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._ready = False
        self._reasons: tuple[str, ...] = ()  # as last audited (see _note_health)
        self._exit_status = 0
        self.pipeline: Pipeline | None = None
        self.control: ControlServer | None = None

    # ---- start-up -------------------------------------------------------------------------
    def self_test(self) -> None:
        """Models loaded, store open and writable, camera yields a frame: else no READY."""
        try:
            self.c.store.health()
        except Exception as e:
            raise SelfTestError(f"store self-test failed: {e}") from e
        try:
            self.c.camera.start()
            frame = self.c.camera.read(timeout_s=5.0)
        except DriverError as e:
            raise SelfTestError(f"camera self-test failed: {e}") from e
        try:
            self.c.engine.observe(frame.image, frame.monotonic_s)
        except Exception as e:
            raise SelfTestError(f"inference self-test failed: {e}") from e

    def _register_workers(self) -> None:
        workers = build_workers(self.c, self)
        pipeline, control = self.pipeline, self.control = workers.pipeline, workers.control
        self.supervisor.add("pipeline", lambda: pipeline.run)
        control.open()
        self.supervisor.add("control", lambda: control.run, essential=False)
        for name, worker in self.c.extra_workers.items():
            self.supervisor.add(name, _factory_of(worker), essential=False)

    def _audit(self, action: str, reason: str, result: str, detail: dict[str, Any]) -> None:
        """Daemon lifecycle and config changes go into the audit chain too."""
        try:
            self.c.store.audit("vigil", "system", action, reason, result, detail)
        except Exception as e:  # noqa: BLE001 - a sick store must not stop start-up or reload
            log.error("audit append failed", extra={"action": action, "error": str(e)})

    def _record_config(self) -> None:
        """Provisioning steps journaled while the daemon was stopped, and a config edited
        while it was stopped, go into the audit chain (firmware/audit_journal.py)."""
        try:
            audit_journal.import_pending(self.c.store, self.settings.unit.resolved_state_dir())
            audit_journal.record_config_at_start(self.c.store, self.settings.source)
        except Exception as e:  # noqa: BLE001 - a sick store must not stop start-up
            log.error("recording config and provisioning in the audit failed",
                      extra={"error": str(e)})

    def control_handlers(self) -> dict[str, Handler]:
        """The control socket's commands (``vigil status``; fault injection for the HIL)."""
        handlers: dict[str, Handler] = {"status": lambda _req: self.status().as_dict(),
                                    "ping": lambda _req: "pong"}
        if os.environ.get("VIGIL_FAULT_INJECTION") == "1":
            # Only for the HIL suite: lets a test crash the pipeline worker from outside.
            def inject(req: dict[str, Any]) -> str:
                if req.get("worker") != "pipeline" or self.pipeline is None:
                    raise ValueError("only the pipeline worker takes injected faults")
                self.pipeline.inject_fault()
                return "injected"

            handlers["inject_fault"] = inject
        return handlers

    # ---- health ----------------------------------------------------------------------------
    def status(self) -> DaemonStatus:
        """The unit's health; ``as_dict()`` is what `vigil status` prints."""
        age = self.heartbeat.age_s()
        counters = self.c.counters.snapshot()
        depth = health = error = None
        try:
            depth = self.c.store.outbox_depth()
            health = self.c.store.health()
        except Exception as e:  # noqa: BLE001 - status must answer even if the store is sick
            health, error = None, str(e)
        ill = self.c.illumination
        extra = {name: worker.status() for name, worker in self.c.extra_workers.items()
                 if hasattr(worker, "status")}
        warnings = tuple(w for record in extra.values()
                         for w in getattr(record, "health_warnings", tuple)())
        disk = disk_usage(self.settings.unit.resolved_state_dir())
        reasons = degraded_reasons(
            health, workers_degraded=self.supervisor.degraded, faults=self.c.faults,
            warnings=warnings,
            disk_low=disk.get("free_mb", math.inf) < self.settings.store.min_free_mb)
        return DaemonStatus(
            version=VERSION,
            state="degraded" if reasons else ("running" if self._ready else "starting"),
            reasons=reasons,
            faults=dict(self.c.faults),
            camera_id=self.settings.unit.camera_id,
            config=self.settings.source,
            workers=self.supervisor.snapshot(),
            frame_rate_fps=round(self.heartbeat.fps(), 2),
            last_frame_age_s=None if age is None else round(age, 3),
            watchdog_ok=self._frames_fresh(),
            disk=disk,
            temperature_c=cpu_temperature_c(),
            counters=counters["counters"], gauges=counters["gauges"],
            pipeline_built=self.pipeline is not None,
            last_read=None if self.pipeline is None else self.pipeline.last_read_summary(),
            queue_depth=depth, store=health, store_error=error,
            illumination=None if ill is None else ill.status(),
            extra=extra,
        )

    def _note_health(self, s: DaemonStatus) -> None:
        """Audit (and log) each change of the degraded reasons once, when it is first seen.

        A transition the store cannot write (disk full, not writable) is logged and the audit
        attempt fails with its own logged error; it is not retried."""
        if s.reasons == self._reasons:
            return
        added = [r for r in s.reasons if r not in self._reasons]
        cleared = [r for r in self._reasons if r not in s.reasons]
        self._reasons = s.reasons
        detail = {"state": s.state, "reasons": list(s.reasons), "added": added, "cleared": cleared}
        (log.warning if added else log.info)("unit health changed", extra=detail)
        self._audit("health.change", "health check", s.state, detail)

    def _frames_fresh(self) -> bool:
        age = self.heartbeat.age_s()
        return age is not None and age < self.settings.watchdog.stall_s

    def summary(self, s: DaemonStatus | None = None) -> str:
        """The ``STATUS=`` line, e.g. ``degraded (disk_full): 9.8 fps, reads 132, queue 12``."""
        s = s or self.status()
        depth = s.queue_depth or {}
        why = f" ({', '.join(s.reasons)})" if s.reasons else ""
        return (
            f"{s.state}{why}: {s.frame_rate_fps:.1f} fps, reads {self.c.counters.get('reads')}, "
            f"queue {sum(depth.values())}"
        )

    def refresh_health(self) -> None:
        """Every 5 s: audit a change of health, and show it in ``STATUS=``."""
        s = self.status()
        self._note_health(s)
        self.notifier.status(self.summary(s))

    # ---- main loop -------------------------------------------------------------------------
    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        signal.signal(signal.SIGINT, lambda *_: self._stop.set())
        signal.signal(signal.SIGHUP, lambda *_: self._reload.set())

    def run(self) -> int:
        self._install_signals()
        self.self_test()
        self._register_workers()
        self.supervisor.start()
        self._ready = True
        self._audit("daemon.start", "service start", "ok",
                    {"config": self.settings.source, "version": VERSION})
        self._record_config()
        self.notifier.ready(self.summary())
        log.info("ready", extra={"config": self.settings.source, "version": VERSION})
        interval = watchdog_interval_s() or self.settings.watchdog.interval_s
        next_status = 0.0
        while not self._stop.wait(min(interval, 1.0)):
            if self._reload.is_set():
                self._reload.clear()
                self.reload()
            if self._frames_fresh():  # degraded or not: see docs/operations.md "Health"
                self.notifier.watchdog()
            else:
                log.warning("frames stalled: withholding watchdog ping",
                            extra={"last_frame_age_s": self.heartbeat.age_s()})
            logsetup.flush_repeats()  # the counts of rate-limited log floods that have ended
            now = self.clock.monotonic()
            if now >= next_status:
                self.refresh_health()
                next_status = now + 5.0
        return self.shutdown()

    def reload(self) -> None:
        """SIGHUP: re-read the config; an invalid one is rejected and the old one kept."""
        self.notifier.reloading()
        source = self.settings.source
        try:
            new = config.load(Path(source)) if Path(source).is_file() else (
                config.simulation_defaults())
            config.check_files(new)
        except Exception as e:  # no file, however bad, may stop a running unit
            if not isinstance(e, ConfigError):
                log.exception("reload failed unexpectedly")
            log.error("reload rejected: keeping the running config", extra={"error": str(e)})
            self._audit("config.reload", "SIGHUP", "rejected", {"error": str(e)[:500]})
            self.notifier.ready(self.summary())
            return
        changed = [k for k in new.sections if new.sections[k] != self.settings.sections[k]]
        needs_restart = [k for k in changed if k not in LIVE_SECTIONS]
        log.info("config reloaded", extra={"changed_sections": changed})
        self._audit("config.reload", "SIGHUP", "ok", {
            "changed_sections": changed,
            "config_sha256": audit_journal.config_sha256(source)})
        if needs_restart:
            # Camera, store, keys and links hold open devices and files; reopening them under a
            # running pipeline risks losing a pass, so those changes wait for a restart.
            log.warning("some changes take effect at the next restart",
                        extra={"sections": needs_restart})
        self.settings = new
        self.c.settings = new
        if self.pipeline is not None:
            self.pipeline.apply_settings(new)
        logging.getLogger().setLevel(new.logging.level.upper())
        self.notifier.ready(self.summary())

    def shutdown(self) -> int:
        log.info("stopping")
        self.notifier.stopping()
        laggards = self.supervisor.stop()
        if self.control is not None:
            self.control.close()
        self._audit("daemon.stop", "SIGTERM", "ok" if not laggards else "laggards",
                    {"reads": self.c.counters.get("reads"), "laggards": laggards})
        self.c.close()
        log.info("stopped", extra={"laggards": laggards})
        return self._exit_status if not laggards else 1

    @property
    def ready(self) -> bool:
        return self._ready

    def request_restart(self, reason: str) -> None:
        """Drain and exit 75 so systemd starts the service again (OTA: the switched slot)."""
        log.warning("restart requested", extra={"reason": reason})
        self._exit_status = 75
        self._stop.set()


def run_daemon(settings: config.Settings) -> int:
    malloc_tuning.tune()  # before any frame buffer or worker thread exists
    try:
        config.check_files(settings)  # exit 78 (no retries) for a file that cannot work
        components = build(settings)
    except ConfigError as e:
        log.error("config error", extra={"error": str(e)})
        return config.EX_CONFIG
    except VigilError as e:
        log.error("start-up failed: not ready", extra={"error": str(e),
                                                       "error_type": type(e).__name__})
        return 1
    daemon = Daemon(components)
    try:
        return daemon.run()
    except SelfTestError as e:
        log.error("self-test failed: not ready", extra={"error": str(e)})
        components.close()
        return 1
