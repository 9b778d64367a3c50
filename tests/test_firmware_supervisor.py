import itertools
import threading
import time

from drivers.clock import SystemClock
from firmware.app.supervisor import Supervisor, SupervisorSettings, WorkerState


def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


def test_crashing_worker_is_restarted_with_growing_backoff():
    starts: list[float] = []

    def factory():
        def run(stop: threading.Event) -> None:
            starts.append(time.monotonic())
            raise RuntimeError("boom")
        return run

    sup = Supervisor(SystemClock(), SupervisorSettings(backoff_initial_s=0.05, backoff_max_s=1.0,
                                                        degrade_after=100))
    sup.add("flaky", factory)
    sup.start()
    try:
        assert wait_for(lambda: len(starts) >= 4)
    finally:
        sup.stop()
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[0] >= 0.04
    assert gaps[2] > gaps[0] * 2.5  # 0.05, 0.1, 0.2: doubling
    snap = sup.snapshot()["flaky"]
    assert snap["restarts"] >= 3
    assert "boom" in snap["last_error"]


def test_worker_that_keeps_failing_degrades_without_stopping_others():
    healthy_ticks = []

    def bad():
        def run(stop):
            raise OSError("camera gone")
        return run

    def good():
        def run(stop):
            while not stop.is_set():
                healthy_ticks.append(1)
                stop.wait(0.01)
        return run

    sup = Supervisor(SystemClock(), SupervisorSettings(backoff_initial_s=0.01, backoff_max_s=0.05,
                                                        degrade_after=3, failure_window_s=60))
    sup.add("bad", bad)
    sup.add("good", good)
    sup.start()
    try:
        assert wait_for(lambda: sup.snapshot()["bad"]["state"] == WorkerState.DEGRADED.value)
        assert sup.degraded
        n = len(healthy_ticks)
        assert wait_for(lambda: len(healthy_ticks) > n + 5)
        assert sup.snapshot()["good"]["state"] == "running"
    finally:
        assert sup.stop() == []


def test_worker_returning_early_counts_as_failure_and_nonessential_does_not_degrade_unit():
    def quits():
        return lambda stop: None

    sup = Supervisor(SystemClock(), SupervisorSettings(backoff_initial_s=0.01, backoff_max_s=0.02,
                                                        degrade_after=2))
    sup.add("console", quits, essential=False)
    sup.start()
    try:
        assert wait_for(lambda: sup.snapshot()["console"]["state"] == "degraded")
        assert not sup.degraded
    finally:
        sup.stop()


def test_restart_request_rebuilds_without_counting_a_failure():
    builds = []

    def factory():
        builds.append(1)

        def run(stop):
            stop.wait()
        return run

    sup = Supervisor(SystemClock())
    sup.add("pipeline", factory)
    sup.start()
    try:
        assert wait_for(lambda: len(builds) == 1)
        sup.restart("pipeline")
        assert wait_for(lambda: len(builds) == 2)
        assert sup.snapshot()["pipeline"]["recent_failures"] == 0
    finally:
        sup.stop()


def test_stop_reports_workers_that_ignore_the_stop_event():
    release = threading.Event()

    def stubborn():
        return lambda stop: release.wait(5)

    sup = Supervisor(SystemClock(), SupervisorSettings(stop_timeout_s=0.2))
    sup.add("stubborn", stubborn)
    sup.start()
    time.sleep(0.05)
    assert sup.stop() == ["stubborn"]
    release.set()
