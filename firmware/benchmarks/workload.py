"""Synthetic reads and alerts: the workload of `vigil bench store` and `vigil bench uplink`.

Realistic in shape (a plate, a place, confidences, candidates, optional image bytes), random in
content, reproducible from the ``rng`` given. The tests build their records with the same
functions (through ``tests.kit``).
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

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
