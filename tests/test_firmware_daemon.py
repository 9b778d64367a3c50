"""The daemon's reported state follows its store's health: a store over its disk budget or
recreated after corruption makes the unit "degraded" (on `vigil status` and in STATUS=)."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from drivers.clock import FakeClock
from firmware import config
from firmware.app.daemon import Components, Daemon
from firmware.app.notify import Notifier
from storage import Store, StoreFull
from storage.health import CorruptionRecovery, StoreHealth
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
    assert status["reasons"] == ["store_not_answering"]


class _FakeStore:
    """A store whose health a test sets; records what the daemon audits."""

    def __init__(self) -> None:
        self.health_now = StoreHealth(schema_version=2, plaintext=False,
                                      recovered_from_corruption=None, over_budget=False,
                                      last_purge_at=None, last_budget_drop_at=None,
                                      last_error=None, undecryptable_items=0)
        self.audits: list[tuple[str, str, dict]] = []

    def health(self) -> StoreHealth:
        return self.health_now

    def outbox_depth(self) -> dict[str, int]:
        return {"alerts": 0, "reads": 3}

    def audit(self, actor: str, role: str, action: str, reason: str, result: str,
              detail: dict) -> None:
        self.audits.append((action, result, detail))


class _Notes(Notifier):
    def __init__(self) -> None:
        super().__init__(address="")
        self.sent: list[dict[str, object]] = []

    def send(self, **fields: str | int) -> bool:
        self.sent.append(fields)
        return True


@pytest.mark.parametrize(("change", "reason"), [
    ({"disk_full": True, "write_failing": "store full: database or disk is full"}, "disk_full"),
    ({"write_failing": "OperationalError: attempt to write a readonly database"},
     "store_not_writable"),
    ({"recovered_from_corruption": CorruptionRecovery("s.db.corrupt-x", "bad page")},
     "store_recovered_from_corruption"),
    ({"over_budget": True}, "store_over_budget"),
    ({"clock_trusted": False}, "clock_untrusted"),
])
def test_each_store_problem_degrades_status_line_and_is_audited_once_per_transition(
        change: dict, reason: str) -> None:
    store, notes = _FakeStore(), _Notes()
    settings = config.simulation_defaults()
    daemon = Daemon(Components(settings=settings, clock=FakeClock(), camera=None, engine=None,
                               store=store), notes)  # type: ignore[arg-type]
    daemon._ready = True
    daemon.refresh_health()
    assert store.audits == [] and str(notes.sent[-1]["status"]).startswith("running: ")
    healthy, store.health_now = store.health_now, replace(store.health_now, **change)
    for _ in range(3):  # the same problem seen again is not audited again
        daemon.refresh_health()
    status = daemon.status()
    assert status.state == "degraded" and status.reasons == (reason,)
    assert status.as_dict()["reasons"] == [reason]
    assert notes.sent[-1]["status"] == f"degraded ({reason}): 0.0 fps, reads 0, queue 3"
    assert store.audits == [("health.change", "degraded",
                             {"state": "degraded", "reasons": [reason], "added": [reason],
                              "cleared": []})]
    store.health_now = healthy
    daemon.refresh_health()
    daemon.refresh_health()
    assert len(store.audits) == 2 and store.audits[1][1] == "running"
    assert store.audits[1][2]["cleared"] == [reason]
    assert str(notes.sent[-1]["status"]).startswith("running: ")


def test_store_degraded_reasons_follow_the_disk_filling_and_emptying(tmp_path: Path) -> None:
    rng = random.Random(37)
    with open_store(tmp_path / "s.db", drop_unsent_reads_when_full=False) as s:
        r = make_read(rng, crop_bytes=1000)
        s.put_read(r, [make_alert(r, rng=rng)])
        pages = s._db.conn.execute("PRAGMA page_count").fetchone()[0]
        s._db.conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk as SQLite sees it
        with pytest.raises(StoreFull):
            s.put_read(make_read(rng, crop_bytes=200_000))
        full = s.health()
        assert full.disk_full and full.degraded and _status(s)["reasons"] == ["disk_full"]
        s._db.conn.execute("PRAGMA max_page_count = 1073741823")
        s.put_read(make_read(rng))
        assert not s.health().disk_full and _status(s)["reasons"] == []


def test_untrusted_clock_is_reported_by_the_store(tmp_path: Path) -> None:
    with open_store(tmp_path / "s.db") as s:
        s.set_clock_trusted(lambda: False)
        assert _status(s)["reasons"] == ["clock_untrusted"]
        s.set_clock_trusted(None)
        assert _status(s)["state"] == "starting"


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
    base = ["version", "state", "reasons", "faults", "camera_id", "config", "workers",
            "frame_rate_fps", "last_frame_age_s", "watchdog_ok", "disk", "temperature_c",
            "counters", "gauges", "queue_depth", "store"]
    assert list(plain) == base
    assert list(full) == [*base, "illumination", "ota"]
    assert list(full["illumination"]) == ["mode", "switches", "failures"]
    assert full["ota"] == {"step": "idle"}
