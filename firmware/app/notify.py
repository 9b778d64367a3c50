"""The systemd notify protocol (sd_notify), without needing systemd or libsystemd.

A datagram to the socket named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract
namespace). With no socket set, every call is a cheap no-op, so the daemon runs the same way from
a shell, a test, or under systemd.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self._sock: socket.socket | None = None
        self._dropping = False
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # Never block on the service manager: if its queue is full a ping is dropped (and a
            # missed watchdog ping is the right outcome when the manager cannot keep up), but
            # the daemon's main loop, and so SIGTERM handling, never stalls in sendto().
            self._sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines; returns False (and logs once per failure) if it could not."""
        if self._sock is None or not self.address:
            return False
        payload = "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            self._sock.sendto(payload, target)
        except BlockingIOError:
            if not self._dropping:  # once per run of drops, not once per ping
                log.warning("notify socket full: messages dropped",
                            extra={"first_dropped": payload.decode()[:40]})
            self._dropping = True
            return False
        except OSError as e:
            log.warning("notify socket send failed", extra={"error": str(e)})
            return False
        self._dropping = False
        return True

    def ready(self, status: str) -> bool:
        return self.send(ready=1, status=status)

    def watchdog(self) -> bool:
        return self.send(watchdog=1)

    def status(self, text: str) -> bool:
        return self.send(status=text)

    def stopping(self) -> bool:
        return self.send(stopping=1)

    def reloading(self) -> bool:
        return self.send(reloading=1)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval_s() -> float | None:
    """Half the watchdog timeout systemd gave us (``$WATCHDOG_USEC``), or None when unset."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1e6 / 2
    except ValueError:
        return None
