"""``vigil read`` on hostile inputs: a small PNG declaring 400 Mpx, a FIFO, a device, a socket;
and its JSONL output (plate texts) created 0600 whatever the umask."""

from __future__ import annotations

import argparse
import json
import os
import socket
import stat
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import pytest

from inference import batch_read

ROOT = Path(__file__).resolve().parents[1]


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    batch_read.add_arguments(p)
    return p.parse_args(list(argv))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png(path: Path, side: int = 20000) -> None:
    """A valid grey PNG of side x side pixels (400 Mpx), all zero: ~390 KB on disk."""
    z = zlib.compressobj(9)
    row = b"\0" * (side + 1)
    step = min(side, 1000)
    parts = [z.compress(row * min(step, side - y)) for y in range(0, side, step)]
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
                     + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b""))


def _records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_pixel_bomb_is_refused_from_its_header_without_decoding(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    _bomb_png(bomb)
    assert bomb.stat().st_size < 1_000_000
    out = tmp_path / "out.jsonl"
    # A separate process whose peak memory (VmHWM, reset at exec) it reports itself: wait4's
    # ru_maxrss would include the forked copy of this test process before the exec.
    code = ("import sys\n"
            "from firmware.cli.main import main\n"
            "rc = main(['read', '--jsonl', sys.argv[1], sys.argv[2]])\n"
            "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0]\n"
            "print(int(hwm.split()[1]), file=sys.stderr)\n"
            "raise SystemExit(rc)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(out), str(bomb)], cwd=ROOT,
                          stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    (rec,) = _records(out)
    assert "400,000,000 pixels" in str(rec["error"]) and "--max-pixels" in str(rec["error"])
    peak_kb = int(proc.stderr.strip().splitlines()[-1])
    assert peak_kb < 600 * 1024, f"peak {peak_kb} kB: the image was decoded"


def test_max_pixels_option_lowers_the_limit(tmp_path: Path) -> None:
    small = tmp_path / "small.png"
    _bomb_png(small, side=1000)
    out = tmp_path / "out.jsonl"
    assert batch_read.run(_args("--jsonl", str(out), "--max-pixels", "999999", str(small))) == 1
    (rec,) = _records(out)
    assert "over the limit of 999,999" in str(rec["error"])


def _run_with_deadline(args: argparse.Namespace, unblock: Path | None) -> int:
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(batch_read.run(args)), daemon=True)
    t.start()
    t.join(timeout=60)
    if t.is_alive() and unblock is not None:
        # The old code blocks opening the FIFO for reading: open its other end to free it.
        fd = os.open(unblock, os.O_WRONLY)
        os.close(fd)
        t.join(timeout=30)
        pytest.fail("vigil read blocked on a FIFO")
    assert result, "vigil read did not finish"
    return result[0]


@pytest.mark.parametrize("ext", [".jpg", ".mp4"])
def test_fifo_is_refused_not_waited_on(tmp_path: Path, ext: str) -> None:
    fifo = tmp_path / f"pipe{ext}"
    os.mkfifo(fifo)
    out = tmp_path / "out.jsonl"
    assert _run_with_deadline(_args("--jsonl", str(out), str(fifo)), fifo) == 1
    (rec,) = _records(out)
    assert "a FIFO, not a regular file" in str(rec["error"])


def test_device_and_socket_are_refused(tmp_path: Path) -> None:
    sock_path = tmp_path / "s.png"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(sock_path))
    try:
        out = tmp_path / "out.jsonl"
        rc = _run_with_deadline(_args("--jsonl", str(out), "/dev/zero", str(sock_path)), None)
    finally:
        srv.close()
    assert rc == 1
    errors = [str(r["error"]) for r in _records(out)]
    assert "a character device, not a regular file" in errors[0]
    # A socket cannot even be opened as a file; either way it is refused with a clear error.
    assert "socket" in errors[1] or "No such device" in errors[1]


def test_jsonl_output_is_created_0600_whatever_the_umask(tmp_path: Path) -> None:
    img = tmp_path / "small.png"
    _bomb_png(img, side=64)
    out = tmp_path / "out.jsonl"
    old = os.umask(0o022)
    try:
        batch_read.run(_args("--jsonl", str(out), str(img)))
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        out.chmod(0o644)  # an existing file is truncated and made private again
        batch_read.run(_args("--jsonl", str(out), str(img)))
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert len(_records(out)) == 1
