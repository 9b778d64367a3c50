"""``vigil read``: read plates in still images, folders (recursively) and videos to JSON Lines.

One JSON object per image (or per processed video frame, ``"image": "<video>#<frame index>"``):
``{"image", "ms", "plates": [{"text", "confidence", "box": [x, y, w, h], "region",
"candidates": [{"text", "confidence"}, ...]}, ...]}``; boxes in pixels of the original image.
``ms`` is the wall time for that image: decode + detect + read. A file that cannot be read
becomes ``{"image", "error"}`` and the run goes on; the exit status is then 1.

Inputs are untrusted files: only regular files are opened (a FIFO, device or socket is refused
rather than read, so the command never blocks on one); an image's header is read first and one
declaring more than ``--max-pixels`` is refused before anything is decoded (a small PNG can
declare 400 Mpx); a file over ``MAX_FILE_BYTES`` is refused. The JSONL output holds plate texts,
so it is created ``0600``.

This is command-line code: it is allowed to write to stdout/stderr.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from inference.engine import PlateEngine
from inference.engine_options import add_engine_arguments, load_engine
from inference.errors import InferenceError
from inference.records import FrameResult

log = logging.getLogger(__name__)

IMAGE_EXTS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm"}
)
VIDEO_EXTS = frozenset({".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".ts"})
#: Default ``--max-pixels``: 50 Mpx is above any camera still (an 8K frame is 33 Mpx) and
#: decodes to 150 MB of BGR.
DEFAULT_MAX_PIXELS = 50_000_000
#: Largest image file read into memory (a still of 50 Mpx is well under this).
MAX_FILE_BYTES = 256 * 1024 * 1024
_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISDIR, "a directory"))


@dataclass(frozen=True)
class Item:
    path: Path
    name: str  # what goes in the "image" field: relative to the folder it was found in


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="images, folders (searched recursively) and video files")
    parser.add_argument("--jsonl", required=True, metavar="OUT",
                        help="JSON Lines output file ('-' for stdout)")
    add_engine_arguments(parser)
    parser.add_argument("--every", type=int, default=1, metavar="N",
                        help="in videos, read every Nth frame (default: every frame)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                        help="refuse images or video frames larger than N pixels "
                             f"(default {DEFAULT_MAX_PIXELS:,})")


def collect(paths: list[Path]) -> list[Item]:
    """Files to read, in a stable order. Folders give their image and video files; a file
    named explicitly is always attempted, whatever its extension."""
    items: list[Item] = []
    for p in paths:
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS:
                    items.append(Item(f, f.relative_to(p).as_posix()))
        else:
            items.append(Item(p, str(p)))
    return items


def _frame_record(name: str, ms: float, result: FrameResult) -> dict[str, Any]:
    plates = []
    for obs in result.plates:
        b = obs.detection.box
        plates.append({
            "text": obs.ocr.text,
            "confidence": round(obs.ocr.confidence, 4),
            "box": [round(b.x, 1), round(b.y, 1), round(b.w, 1), round(b.h, 1)],
            "region": obs.ocr.region,
            "candidates": [
                {"text": c.text, "confidence": round(c.confidence, 4)}
                for c in obs.ocr.candidates
            ],
        })
    return {"image": name, "ms": round(ms, 2), "plates": plates}


def _not_regular(mode: int) -> str | None:
    """What a non-regular file is ("a FIFO" ...), or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def check_regular(path: Path) -> None:
    """Refuse anything but a regular file (stat only: a FIFO is never opened)."""
    what = _not_regular(path.stat().st_mode)
    if what is not None:
        raise InferenceError(f"{what}, not a regular file: refused")


def read_regular(path: Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file. Opened non-blocking and checked on the open descriptor,
    so a FIFO swapped in after a check neither blocks the open nor gets read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        what = _not_regular(st.st_mode)
        if what is not None:
            raise InferenceError(f"{what}, not a regular file: refused")
        if st.st_size > max_bytes:
            raise InferenceError(f"file of {st.st_size} bytes is over the {max_bytes} limit")
        return f.read(max_bytes + 1)


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise InferenceError(
            f"image is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (--max-pixels)"
        )


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height from the header alone (Pillow parses the header lazily)."""
    from PIL import Image, UnidentifiedImageError

    # Pillow's own bomb check would refuse before telling the size; ours follows, with the
    # caller's limit. Only the header is parsed here, so lifting it for this call is safe.
    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            return int(w), int(h)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise InferenceError(f"not a readable image: {e}") from e
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def read_image(engine: PlateEngine, item: Item,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> dict[str, Any]:
    t0 = time.perf_counter()
    raw = read_regular(item.path)
    if raw:
        check_pixels(*image_size(raw), max_pixels)
    data = np.frombuffer(raw, dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise InferenceError("not a readable image")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    result = engine.observe(rgb)
    return _frame_record(item.name, (time.perf_counter() - t0) * 1000, result)


def read_video(engine: PlateEngine, item: Item, every: int,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator[dict[str, Any]]:
    check_regular(item.path)
    cap = cv2.VideoCapture(str(item.path))
    try:
        if not cap.isOpened():
            raise InferenceError("not a readable video")
        check_pixels(int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), max_pixels)
        index = 0
        produced = 0
        while True:
            t0 = time.perf_counter()
            if index % every:
                if not cap.grab():
                    break
                index += 1
                continue
            ok, bgr = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            result = engine.observe(rgb, frame_time_s=float(cap.get(cv2.CAP_PROP_POS_MSEC)) / 1e3)
            yield _frame_record(
                f"{item.name}#{index}", (time.perf_counter() - t0) * 1000, result
            )
            produced += 1
            index += 1
        if produced == 0:
            raise InferenceError("video has no decodable frames")
    finally:
        cap.release()


def _process(engine: PlateEngine, item: Item, args: argparse.Namespace, out: IO[str]) -> bool:
    """Write the records of one file; False (and an error record) if it failed."""
    try:
        if item.path.suffix.lower() in VIDEO_EXTS:
            for rec in read_video(engine, item, args.every, args.max_pixels):
                out.write(json.dumps(rec) + "\n")
        else:
            out.write(json.dumps(read_image(engine, item, args.max_pixels)) + "\n")
        return True
    except (InferenceError, OSError, cv2.error) as e:
        log.error("cannot read %s: %s", item.name, e, extra={"image": item.name, "error": str(e)})
        out.write(json.dumps({"image": item.name, "error": str(e)}) + "\n")
        return False
    finally:
        out.flush()


def open_private(path: str) -> IO[str]:
    """The output file, created (or truncated and re-moded) 0600 whatever the umask: it holds
    plate texts."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        os.close(fd)
        raise
    return os.fdopen(fd, "w", encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    """0 when every file was processed, 1 when some failed, 2 when nothing could start."""
    from tqdm import tqdm  # type: ignore[import-untyped]

    if args.every < 1 or args.max_pixels < 1:
        print("vigil read: --every and --max-pixels must be >= 1", file=sys.stderr)
        return 2
    items = collect(list(args.paths))
    missing = [i for i in items if not i.path.exists()]
    try:
        engine = load_engine(args)
    except (InferenceError, ValueError) as e:
        print(f"vigil read: {e}", file=sys.stderr)
        return 2
    failed = 0
    out: IO[str] = sys.stdout if args.jsonl == "-" else open_private(args.jsonl)
    try:
        with engine:
            bar = tqdm(items, unit="file", file=sys.stderr, disable=None)
            for item in bar:
                if item in missing:
                    log.error("no such file %s", item.name, extra={"image": item.name})
                    out.write(json.dumps({"image": item.name, "error": "no such file"}) + "\n")
                    failed += 1
                    continue
                if not _process(engine, item, args, out):
                    failed += 1
    finally:
        if out is not sys.stdout:
            out.close()
    if failed:
        print(f"vigil read: {failed} of {len(items)} files failed", file=sys.stderr)
    return 1 if failed else 0
