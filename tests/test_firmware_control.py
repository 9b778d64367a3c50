import stat
import threading

import pytest

from firmware.console.control import ControlServer, request
from firmware.errors import ControlError


def test_status_round_trip_and_owner_only_socket(tmp_path):
    path = tmp_path / "run" / "control.sock"
    server = ControlServer(path, {"status": lambda req: {"state": "running"},
                                  "boom": lambda req: 1 / 0})
    server.open()
    stop = threading.Event()
    t = threading.Thread(target=server.run, args=(stop,))
    t.start()
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert request(path, "status") == {"state": "running"}
        with pytest.raises(ControlError, match="unknown command"):
            request(path, "nope")
        with pytest.raises(ControlError, match="ZeroDivisionError"):
            request(path, "boom")
        assert request(path, "status") == {"state": "running"}  # survived
    finally:
        stop.set()
        t.join()
        server.close()
    assert not path.exists()


def test_unreachable_daemon_is_a_clear_error(tmp_path):
    with pytest.raises(ControlError, match="cannot reach"):
        request(tmp_path / "absent.sock", "status")
