import os
import socket

import pytest

from firmware.app.notify import Notifier, watchdog_interval_s


@pytest.fixture
def listener(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield path, sock
    sock.close()


def test_ready_watchdog_and_status_reach_the_socket(listener):
    path, sock = listener
    n = Notifier(str(path))
    assert n.ready("3 fps")
    assert sock.recv(1024) == b"READY=1\nSTATUS=3 fps"
    assert n.watchdog()
    assert sock.recv(1024) == b"WATCHDOG=1"
    assert n.stopping()
    assert sock.recv(1024) == b"STOPPING=1"
    n.close()


def test_abstract_namespace_address():
    name = f"vigil-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        assert Notifier("@" + name).watchdog()
        assert sock.recv(100) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_without_socket_everything_is_a_noop(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled
    assert n.ready("x") is False


def test_missing_listener_is_logged_not_raised(tmp_path):
    assert Notifier(str(tmp_path / "nobody.sock")).watchdog() is False


def test_watchdog_interval_is_half_the_timeout(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval_s() == 5.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert watchdog_interval_s() is None


def test_a_full_notify_queue_never_blocks_the_daemon(listener):
    path, _sock = listener  # nobody reads: the receive queue fills up
    n = Notifier(str(path))
    import time

    t0 = time.monotonic()
    results = [n.watchdog() for _ in range(2000)]
    assert time.monotonic() - t0 < 2.0
    assert results[0] is True and results[-1] is False  # later pings dropped, not blocked
