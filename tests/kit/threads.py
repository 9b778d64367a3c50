"""Run a component's ``run(stop)`` loop on a thread until a condition holds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def run_until(
    run: Callable[[threading.Event], object],
    done: Callable[[], bool],
    timeout_s: float,
    join_s: float = 5.0,
) -> None:
    """Start ``run(stop)``, poll ``done()`` until true or ``timeout_s``, then set ``stop`` and
    wait up to ``join_s`` for the thread. The caller asserts what it expects."""
    stop = threading.Event()
    worker = threading.Thread(target=run, args=(stop,), daemon=True)
    worker.start()
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    worker.join(join_s)
