"""Log floods: identical warnings/errors pass once per interval, then as a count (item 7)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from firmware.app import logsetup
from firmware.app.logsetup import RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def flood():
    """A logger whose JSON lines land in a buffer through a RepeatFilter on a fake clock."""
    clock = Clock()
    filt = RepeatFilter(interval_s=60.0, clock=clock)
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logsetup.JsonFormatter(with_time=False))
    handler.addFilter(filt)
    logger = logging.getLogger("test.flood")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)

    def lines() -> list[dict]:
        return [json.loads(x) for x in buf.getvalue().splitlines()]

    yield logger, filt, clock, lines
    logger.removeHandler(handler)
    logger.propagate = True


def _disk_full(logger: logging.Logger, i: int) -> None:
    try:
        raise OSError(28, "No space left on device")
    except OSError:
        logger.exception("store writer failed a batch", extra={"batch": i})


def test_a_traceback_per_frame_becomes_one_line_and_a_count(flood):
    logger, _, clock, lines = flood
    for i in range(45 * 60):  # a minute of 45 failures per second
        _disk_full(logger, i)
        clock.t += 1 / 45
    out = lines()
    assert len(out) == 1 and "No space left" in out[0]["exc"]
    clock.t += 0.1
    _disk_full(logger, 9999)  # the interval is over: a summary without the traceback
    out = lines()
    assert len(out) == 2
    assert out[1]["repeated"] == 45 * 60 - 1 and "exc" not in out[1]
    assert "(repeated 2699 times in 60 s)" in out[1]["msg"]


def test_flush_reports_a_flood_that_stopped(flood):
    logger, filt, clock, lines = flood
    for _ in range(10):
        logger.error("camera read failed: %s", "timeout")
    assert filt.flush() == 0  # interval not over yet
    clock.t = 61.0
    assert filt.flush() == 1
    out = lines()
    assert [o.get("repeated") for o in out] == [None, 9]
    assert out[1]["msg"] == "camera read failed: timeout (repeated 9 times in 60 s)"
    assert filt.flush() == 0
    logger.error("camera read failed: %s", "timeout")  # a new occurrence passes whole again
    assert len(lines()) == 3


def test_different_messages_levels_and_info_are_not_limited(flood):
    logger, _, _, lines = flood
    for _ in range(3):
        logger.error("a")
        logger.warning("a")
        logger.error("b")
        logger.info("reads are not errors")
    assert [o["msg"] for o in lines()] == ["a", "a", "b", "reads are not errors",
                                           "reads are not errors", "reads are not errors"]


def test_configure_shares_one_filter_between_stderr_and_the_console_buffer():
    buf = io.StringIO()
    root = logging.getLogger()
    old_handlers, old_level = list(root.handlers), root.level
    try:
        logsetup.configure("info", stream=buf)
        for _ in range(50):
            logging.getLogger("test.configure").error("same failure, unique %s", "x")
        assert buf.getvalue().count("same failure") == 1
        assert sum("same failure" in x for x in logsetup.RECENT.last(500)) == 1
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in old_handlers:
            root.addHandler(h)
        root.setLevel(old_level)
