"""The daemon's reported state follows its store's health: a store over its disk budget or
recreated after corruption makes the unit "degraded" (on `vigil status` and in STATUS=)."""

from __future__ import annotations

import random
from pathlib import Path

from drivers.clock import FakeClock
from firmware import config
from firmware.app.daemon import Components, Daemon
from firmware.app.notify import Notifier
from storage import Store
from tests.kit import make_alert, make_read, open_store


def _status(store: Store) -> dict:
    settings = config.simulation_defaults()
    components = Components(settings=settings, clock=FakeClock(), camera=None, engine=None,
                            store=store)
    return Daemon(components, Notifier(address="")).status().as_dict()


def test_healthy_store_leaves_the_unit_running(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.db") as s:
        status = _status(s)
    assert status["state"] == "starting"  # not degraded; "running" only after READY
    assert status["store"]["ok"] and not status["store"]["degraded"]


def test_store_over_budget_degrades_the_unit(tmp_path: Path) -> None:
    rng = random.Random(33)
    with open_store(tmp_path / "s.db", max_db_mb=1.0) as s:
        for _ in range(80):  # reads with unsent alerts: nothing the budget may drop
            r = make_read(rng, crop_bytes=20000)
            s.put_read(r, [make_alert(r, rng=rng)])
        assert s.enforce_budget().over_budget
        health = s.health()
        status = _status(s)
    assert status["state"] == "degraded"
    assert health.degraded and not health.ok
    assert status["store"]["over_budget"] and status["store"]["degraded"]


def test_store_recovered_from_corruption_degrades_the_unit(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not a database" * 100)
    with open_store(path) as s:
        health = s.health()
        status = _status(s)
    assert status["state"] == "degraded"
    assert health.degraded and health.recovered_from_corruption is not None
    assert status["store"]["recovered_from_corruption"]["moved_to"].startswith(str(path))


def test_store_that_cannot_answer_degrades_the_unit(tmp_path: Path) -> None:
    class Broken:
        def health(self) -> None:
            raise OSError("disk gone")

        def outbox_depth(self) -> None:
            raise OSError("disk gone")

    status = _status(Broken())  # type: ignore[arg-type]
    assert status["state"] == "degraded" and status["store"] == {"error": "disk gone"}


class _Record:
    def __init__(self, fields: dict[str, object]) -> None:
        self.fields = fields

    def as_dict(self) -> dict[str, object]:
        return self.fields


class _Worker:
    def __init__(self, status: dict[str, object]) -> None:
        self._status = _Record(status)

    def run(self, stop: object) -> None:  # never started here
        raise AssertionError

    def status(self) -> _Record:
        return self._status


def test_status_json_keys_are_pinned(tmp_path: Path) -> None:
    """`vigil status` is what operators' scripts parse: its keys and their order do not move."""
    import json
    from types import SimpleNamespace

    from drivers.illuminator import IlluminatorSettings
    from firmware.pipeline.daynight import IlluminationController

    settings = config.simulation_defaults()
    with open_store(tmp_path / "s.db") as s:
        components = Components(settings=settings, clock=FakeClock(), camera=None, engine=None,
                                store=s)
        plain = json.loads(json.dumps(Daemon(components, Notifier(address="")).status().as_dict()))
        components.illumination = IlluminationController(
            SimpleNamespace(), FakeClock(), IlluminatorSettings())  # type: ignore[arg-type]
        components.extra_workers["ota"] = _Worker({"step": "idle"})  # type: ignore[assignment]
        full = json.loads(json.dumps(Daemon(components, Notifier(address="")).status().as_dict()))
    base = ["version", "state", "faults", "camera_id", "config", "workers", "frame_rate_fps",
            "last_frame_age_s", "watchdog_ok", "disk", "temperature_c", "counters", "gauges",
            "queue_depth", "store"]
    assert list(plain) == base
    assert list(full) == [*base, "illumination", "ota"]
    assert list(full["illumination"]) == ["mode", "switches", "failures"]
    assert full["ota"] == {"step": "idle"}
