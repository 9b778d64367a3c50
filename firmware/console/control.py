"""Local control socket: one JSON request line in, one JSON response line out.

The socket is created owner-only (0600 inside a 0700 directory) so only the service user (and
root) can ask; there is no network listener. Commands are looked up in a small table the daemon
fills; an unknown or malformed request gets an error reply, never a crash.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.errors import ControlError

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Any]
MAX_REQUEST_BYTES = 64 * 1024


class ControlServer:
    def __init__(self, path: Path, handlers: dict[str, Handler]) -> None:
        self.path = path
        self.handlers = handlers
        self._sock: socket.socket | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        sock.listen(8)
        sock.settimeout(0.2)
        self._sock = sock

    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set (a supervised worker)."""
        if self._sock is None:
            self.open()
        assert self._sock is not None
        while not stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2.0)
                self._serve_one(conn)

    def _serve_one(self, conn: socket.socket) -> None:
        buf = b""
        try:
            while b"\n" not in buf and len(buf) < MAX_REQUEST_BYTES:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                buf += chunk
        except OSError:
            return
        try:
            request = json.loads(buf.split(b"\n", 1)[0] or b"null")
            if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
                raise ValueError("request must be a JSON object with a string 'cmd'")
            handler = self.handlers.get(request["cmd"])
            if handler is None:
                raise ValueError(f"unknown command {request['cmd']!r}")
            reply = {"ok": True, "result": handler(request)}
        except (ValueError, json.JSONDecodeError) as e:
            log.warning("bad control request", extra={"error": str(e)})
            reply = {"ok": False, "error": str(e)}
        except Exception as e:  # a failing handler must not kill the server
            log.exception("control handler failed")
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps(reply, default=str).encode() + b"\n")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def request(path: Path, cmd: str, timeout_s: float = 5.0, **args: Any) -> Any:
    """Send one command to a running daemon and return its result."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout_s)
            s.connect(str(path))
            s.sendall(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
    except OSError as e:
        raise ControlError(f"cannot reach the daemon at {path}: {e.strerror or e}") from e
    try:
        reply = json.loads(buf)
    except json.JSONDecodeError as e:
        raise ControlError(f"bad reply from the daemon at {path}") from e
    if not reply.get("ok"):
        raise ControlError(f"daemon refused {cmd!r}: {reply.get('error')}")
    return reply.get("result")
