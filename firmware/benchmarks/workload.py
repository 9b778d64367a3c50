"""Builders for tests, benchmarks and the crash-safety writer process. No production use.

``python -m storage.testing crash-writer DB KEK_HEX SEED`` writes reads forever and prints each
read_id on stdout (flushed) only after ``put_read`` returned: the line is the acknowledgement a
SIGKILL test checks against.
"""

from __future__ import annotations

import random
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storage.records import AlertRecord, ReadRecord

_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"


def random_plate(rng: random.Random) -> str:
    return (
        "".join(rng.choice(_LETTERS) for _ in range(2))
        + f"{rng.randrange(10, 99)}"
        + "".join(rng.choice(_LETTERS) for _ in range(3))
    )


def make_read(
    rng: random.Random | None = None,
    *,
    plate: str | None = None,
    captured_at: datetime | None = None,
    crop_bytes: int = 0,
    overview_bytes: int = 0,
    read_id: str | None = None,
) -> ReadRecord:
    rng = rng or random.Random()
    plate = plate or random_plate(rng)
    return ReadRecord(
        read_id=read_id or str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        captured_at=captured_at or datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        frame_monotonic_s=rng.uniform(0, 1e5),
        camera_id="cam-1",
        latitude=48.8566 + rng.uniform(-0.01, 0.01),
        longitude=2.3522 + rng.uniform(-0.01, 0.01),
        location_source="gps",
        direction="in",
        plate_text=plate,
        confidence=0.97,
        char_confidences=tuple(0.9 + 0.01 * i for i in range(len(plate))),
        candidates=((plate, 0.97), (plate[:-1] + "X", 0.02)),
        region="FR",
        plate_class="standard",
        box=(10.0, 20.0, 110.0, 50.0),
        frames_used=5,
        clock_synced=True,
        crop_jpeg=rng.randbytes(crop_bytes) if crop_bytes else None,
        overview_jpeg=rng.randbytes(overview_bytes) if overview_bytes else None,
    )


def make_alert(
    read: ReadRecord, *, priority: int = 10, rng: random.Random | None = None
) -> AlertRecord:
    rng = rng or random.Random()
    return AlertRecord(
        alert_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        read_id=read.read_id,
        hotlist_name="stolen",
        hotlist_version=3,
        matched_entry=read.plate_text,
        rule="exact",
        reason="reported stolen",
        priority=priority,
        raised_at=read.captured_at + timedelta(milliseconds=5),
    )


def _crash_writer(db: str, kek_hex: str, seed: int) -> None:
    from drivers.clock import SystemClock
    from storage.keys import MemoryKeySource
    from storage.settings import StoreSettings
    from storage.store import Store

    rng = random.Random(seed)
    settings = StoreSettings(path=Path(db), checkpoint_every=7, group_commit_max=64)
    store = Store.open(
        Path(db), MemoryKeySource(bytes.fromhex(kek_hex)), settings, SystemClock(), background=False
    )
    i = 0
    while True:
        read = make_read(
            rng, crop_bytes=rng.choice((0, 2000, 20000)), overview_bytes=rng.choice((0, 0, 30000))
        )
        alerts = [make_alert(read, rng=rng)] if i % 9 == 0 else []
        store.put_read(read, alerts)
        sys.stdout.write(read.read_id + "\n")
        sys.stdout.flush()
        if i % 5 == 0:
            store.audit("tester", "technician", "console.command", "crash test", "ok", {"i": i})
        if i % 11 == 0:
            batch = store.next_outbox_batch(5, 1 << 20)
            store.mark_sent([b.item_id for b in batch])
        i += 1


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "crash-writer":
        _crash_writer(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit("usage: python -m storage.testing crash-writer DB KEK_HEX SEED")
