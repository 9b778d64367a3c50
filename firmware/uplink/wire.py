"""The wire format (docs/uplink.md): gzip JSON batches out, per-id acknowledgements back. Pure."""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from firmware.uplink.transport import TransportError

#: Rejection reasons the server uses for items that will never be accepted as they are.
PERMANENT_REJECTIONS = frozenset({"invalid", "forbidden", "too_large", "unsupported"})


class OutboxItemLike(Protocol):
    """What ``storage.records.OutboxItem`` provides."""

    @property
    def item_id(self) -> str: ...
    @property
    def kind(self) -> str: ...  # "alert" | "read"
    @property
    def read_id(self) -> str: ...
    @property
    def payload(self) -> Mapping[str, Any]: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def attempts(self) -> int: ...


def json_default(o: Any) -> Any:
    if isinstance(o, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(o)).decode()
    if isinstance(o, datetime):
        return o.isoformat()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def wire_id(item: OutboxItemLike) -> str:
    """The id the server deduplicates on: the read id, or the alert id for alerts."""
    if item.kind == "alert":
        aid = item.payload.get("alert_id")
        return str(aid) if aid else item.item_id
    return item.read_id


def encode_batch(
    device_id: str, kind: str, items: Sequence[OutboxItemLike], level: int,
    extra: Mapping[str, Any] | None = None,
) -> tuple[str, bytes]:
    """Gzip JSON body for ``/v1/reads`` (kind ``reads``) or ``/v1/alerts`` (``alerts``)."""
    batch_id = uuid.uuid4().hex
    doc: dict[str, Any] = {
        "device_id": device_id,
        "batch_id": batch_id,
        kind: [
            {
                "id": wire_id(it),
                "read_id": it.read_id,
                "created_at": it.created_at.isoformat(),
                "attempt": it.attempts + 1,
                "data": dict(it.payload),
            }
            for it in items
        ],
    }
    if extra:
        doc.update(extra)
    raw = json.dumps(doc, default=json_default, separators=(",", ":")).encode()
    return batch_id, gzip.compress(raw, compresslevel=level, mtime=0)


@dataclass(frozen=True)
class Ack:
    accepted: frozenset[str]
    rejected: Mapping[str, str]


def parse_ack(body: bytes) -> Ack:
    try:
        doc = json.loads(body)
        accepted = frozenset(str(x) for x in doc["accepted"])
        rejected = {str(r["id"]): str(r.get("reason", "")) for r in doc.get("rejected", [])}
    except (ValueError, KeyError, TypeError) as e:
        raise TransportError("protocol", f"unreadable acknowledgement: {e}") from e
    return Ack(accepted, rejected)


def batch_ids(body: bytes, kind: str) -> list[str]:
    """The wire ids of the ``kind`` items (``reads``, ``alerts``) in an encoded batch
    (:func:`encode_batch`'s body), in order. A transport that acknowledges a batch as a whole
    (an MQTT PUBACK) answers with these."""
    try:
        doc = json.loads(gzip.decompress(body))
        return [str(it["id"]) for it in doc[kind]]
    except (OSError, EOFError, ValueError, KeyError, TypeError) as e:
        raise TransportError("protocol", f"not an encoded batch: {e}") from e
