"""`vigil status` as a record: what ``Daemon.status()`` returns; ``as_dict()`` is the JSON the
control socket, the console and ``STATUS=`` show (keys and order pinned by
tests/test_firmware_daemon.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from firmware.pipeline.daynight import IlluminationStatus
from storage.health import StoreHealth


class StatusRecord(Protocol):
    """A worker's status record: typed fields, and the JSON view of them."""

    def as_dict(self) -> Mapping[str, object]: ...


def degraded_reasons(
    store: StoreHealth | None, *, workers_degraded: bool, faults: Mapping[str, str],
    warnings: tuple[str, ...] = (), disk_low: bool = False,
) -> tuple[str, ...]:
    """Why the unit is ``degraded`` (empty: it is not), in a fixed order. ``store`` None means the
    store did not answer; ``warnings`` are the workers' own (a status record's
    ``health_warnings()``, e.g. ``hotlist_stale``). Pure: the daemon audits each change of this
    tuple once. ``disk_low``: the state filesystem has less free space than
    ``[store] min_free_mb``."""
    reasons: list[str] = list(warnings)
    if workers_degraded:
        reasons.append("worker_degraded")
    if faults:
        reasons.append("start_faults")
    if disk_low:
        reasons.append("disk_low")
    if store is None:
        return (*reasons, "store_not_answering")
    if store.disk_full:
        reasons.append("disk_full")
    elif store.write_failing is not None:
        reasons.append("store_not_writable")
    if store.over_budget:
        reasons.append("store_over_budget")
    if store.recovered_from_corruption is not None:
        reasons.append("store_recovered_from_corruption")
    if store.damaged_day_keys:
        reasons.append("store_day_key_damaged")
    if store.mac_mismatches:
        reasons.append("store_rows_tampered")
    if store.shred_pending is not None:
        reasons.append("retention_shred_pending")
    if not store.clock_trusted:
        reasons.append("clock_untrusted")
    return tuple(reasons)


@dataclass(frozen=True)
class DaemonStatus:
    version: str
    state: str  # "starting", "running" or "degraded"
    reasons: tuple[str, ...]  # degraded_reasons(); empty unless state is "degraded"
    faults: Mapping[str, str]  # parts that failed at start
    camera_id: str
    config: str
    workers: Mapping[str, Mapping[str, object]]  # the supervisor's view of each worker
    frame_rate_fps: float
    last_frame_age_s: float | None
    watchdog_ok: bool
    disk: Mapping[str, float]
    temperature_c: float | None
    counters: Mapping[str, int]
    gauges: Mapping[str, Any]
    pipeline_built: bool  # last_read is shown once the pipeline exists (None: nothing read yet)
    last_read: Mapping[str, Any] | None
    queue_depth: Mapping[str, int] | None  # None: the store did not answer
    store: StoreHealth | None
    store_error: str | None
    illumination: IlluminationStatus | None
    extra: Mapping[str, StatusRecord] = field(default_factory=dict)  # by worker name

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": self.version, "state": self.state, "reasons": list(self.reasons),
            "faults": dict(self.faults),
            "camera_id": self.camera_id, "config": self.config,
            "workers": {k: dict(v) for k, v in self.workers.items()},
            "frame_rate_fps": self.frame_rate_fps, "last_frame_age_s": self.last_frame_age_s,
            "watchdog_ok": self.watchdog_ok, "disk": dict(self.disk),
            "temperature_c": self.temperature_c, "counters": dict(self.counters),
            "gauges": dict(self.gauges)}
        if self.pipeline_built:
            out["last_read"] = None if self.last_read is None else dict(self.last_read)
        if self.queue_depth is not None:
            out["queue_depth"] = dict(self.queue_depth)
        out["store"] = {"error": self.store_error} if self.store is None else self.store.as_dict()
        if self.illumination is not None:
            out["illumination"] = self.illumination.as_dict()
        for name, record in self.extra.items():
            out[name] = record.as_dict()
        return out
