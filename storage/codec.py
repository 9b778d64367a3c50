"""Records <-> JSON payloads (pure). The same dict is sealed at rest and sent by the uplink."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from storage.records import AlertRecord, ReadRecord

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def read_payload(read: ReadRecord) -> dict[str, Any]:
    return {
        "read_id": read.read_id,
        "captured_at": read.captured_at.isoformat(),
        "frame_monotonic_s": read.frame_monotonic_s,
        "camera_id": read.camera_id,
        "latitude": read.latitude,
        "longitude": read.longitude,
        "location_source": read.location_source,
        "direction": read.direction,
        "plate_text": read.plate_text,
        "confidence": read.confidence,
        "char_confidences": list(read.char_confidences),
        "candidates": [[t, c] for t, c in read.candidates],
        "region": read.region,
        "plate_class": read.plate_class,
        "box": list(read.box),
        "frames_used": read.frames_used,
        "clock_synced": read.clock_synced,
        "clock_flags": list(read.clock_flags),
        "clock_offset_s": read.clock_offset_s,
    }


def alert_payload(alert: AlertRecord) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "read_id": alert.read_id,
        "hotlist_name": alert.hotlist_name,
        "hotlist_version": alert.hotlist_version,
        "matched_entry": alert.matched_entry,
        "rule": alert.rule,
        "reason": alert.reason,
        "priority": alert.priority,
        "raised_at": alert.raised_at.isoformat(),
    }


def to_json(payload: dict[str, Any]) -> bytes:
    return _dumps(payload).encode()


def from_json(data: bytes) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(data)
    return out


def read_from_payload(
    p: dict[str, Any], crop: bytes | None = None, overview: bytes | None = None
) -> ReadRecord:
    return ReadRecord(
        read_id=p["read_id"],
        captured_at=datetime.fromisoformat(p["captured_at"]),
        frame_monotonic_s=float(p["frame_monotonic_s"]),
        camera_id=p["camera_id"],
        latitude=p["latitude"],
        longitude=p["longitude"],
        location_source=p["location_source"],
        direction=p["direction"],
        plate_text=p["plate_text"],
        confidence=float(p["confidence"]),
        char_confidences=tuple(float(c) for c in p["char_confidences"]),
        candidates=tuple((str(t), float(c)) for t, c in p["candidates"]),
        region=p["region"],
        plate_class=p["plate_class"],
        box=(float(p["box"][0]), float(p["box"][1]), float(p["box"][2]), float(p["box"][3])),
        frames_used=int(p["frames_used"]),
        clock_synced=bool(p["clock_synced"]),
        clock_flags=tuple(str(f) for f in p.get("clock_flags", ())),
        clock_offset_s=None if p.get("clock_offset_s") is None else float(p["clock_offset_s"]),
        crop_jpeg=crop,
        overview_jpeg=overview,
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
