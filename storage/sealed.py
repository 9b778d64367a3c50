"""Sealed rows in and out: reads, images and alerts sealed under their day's key for writing,
fetched by id and opened (authenticated) for reading.

The associated data of every field names its table, column and the row's stable id, so a
ciphertext copied into another row or column fails to open (:class:`TamperDetected`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from storage import codec
from storage.crypto import Cipher, associated_data
from storage.daykeys import DayKeys
from storage.db import Database
from storage.errors import TamperDetected
from storage.records import AlertRecord, ReadRecord

_AD_READ = ("reads", "payload")
_AD_ALERT = ("alerts", "payload")


@dataclass(slots=True)
class SealedRead:
    """The rows one read (and its alerts) becomes, sealed, ready to insert."""

    # read_id, day, plate blind index, payload, clock flags (comma-separated, "" for none)
    read_row: tuple[str, str, bytes, bytes, str]
    image_rows: list[tuple[str, str, str, bytes]]
    alert_rows: list[tuple[str, str, str, int, bytes]]
    outbox_rows: list[tuple[str, str, str, str, int, int]]

    @property
    def read_id(self) -> str:
        return self.read_row[0]

    def sealed_bytes(self) -> int:
        return len(self.read_row[3]) + sum(len(r[3]) for r in self.image_rows)


def seal_read(read: ReadRecord, alerts: Sequence[AlertRecord], cipher: Cipher) -> SealedRead:
    rid = read.read_id
    payload = cipher.seal(codec.to_json(codec.read_payload(read)), associated_data(*_AD_READ, rid))
    images = []
    for kind, data in (("crop", read.crop_jpeg), ("overview", read.overview_jpeg)):
        if data:
            sealed = cipher.seal(data, associated_data("images", kind, rid))
            images.append((rid, kind, cipher.day, sealed))
    alert_rows = []
    outbox = []
    for a in alerts:
        sealed = cipher.seal(
            codec.to_json(codec.alert_payload(a)), associated_data(*_AD_ALERT, a.alert_id)
        )
        alert_rows.append((a.alert_id, rid, cipher.day, a.priority, sealed))
        outbox.append((a.alert_id, "alert", rid, cipher.day, 0, a.priority))
    outbox.append((rid, "read", rid, cipher.day, 1, 0))
    return SealedRead(
        (rid, cipher.day, cipher.blind_index(read.plate_text), payload,
         ",".join(read.clock_flags)),
        images, alert_rows, outbox
    )


class SealedRows:
    """Fetches sealed rows by id (the caller holds the database lock) and opens them."""

    def __init__(self, db: Database, keys: DayKeys) -> None:
        self._db = db
        self._keys = keys

    def read_payloads(self, read_ids: Sequence[str]) -> dict[str, tuple[str, bytes]]:
        sql = "SELECT read_id, day, payload FROM reads WHERE read_id IN ({marks})"
        return {rid: (day, payload) for rid, day, payload in self._db.rows_in(sql, read_ids)}

    def alert_payloads(self, alert_ids: Sequence[str]) -> dict[str, tuple[str, bytes]]:
        sql = "SELECT alert_id, day, payload FROM alerts WHERE alert_id IN ({marks})"
        return {aid: (day, payload) for aid, day, payload in self._db.rows_in(sql, alert_ids)}

    def images(self, read_ids: Sequence[str]) -> dict[str, dict[str, bytes]]:
        out: dict[str, dict[str, bytes]] = {}
        sql = "SELECT read_id, kind, data FROM images WHERE read_id IN ({marks})"
        for rid, kind, data in self._db.rows_in(sql, read_ids):
            out.setdefault(rid, {})[kind] = data
        return out

    def open_read(self, row: tuple[str, bytes] | None, read_id: str) -> dict[str, Any]:
        if row is None:
            raise TamperDetected(f"read {read_id} is missing")
        day, sealed = row
        payload = codec.from_json(
            self._keys.for_read(day).open(sealed, associated_data(*_AD_READ, read_id))
        )
        if payload.get("read_id") != read_id:
            raise TamperDetected(f"read {read_id} holds another read's payload")
        return payload

    def open_alert(self, row: tuple[str, bytes] | None, alert_id: str) -> dict[str, Any]:
        if row is None:
            raise TamperDetected(f"alert {alert_id} is missing")
        day, sealed = row
        return codec.from_json(
            self._keys.for_read(day).open(sealed, associated_data(*_AD_ALERT, alert_id))
        )

    def open_image(self, sealed: bytes, read_id: str, kind: str, day: str) -> bytes:
        return self._keys.for_read(day).open(sealed, associated_data("images", kind, read_id))

    def record(
        self, payload: dict[str, Any], read_id: str, day: str, images: dict[str, bytes]
    ) -> ReadRecord:
        """The record of an opened read payload, with its sealed images opened."""
        imgs = {k: self.open_image(v, read_id, k, day) for k, v in images.items()}
        return codec.read_from_payload(payload, imgs.get("crop"), imgs.get("overview"))
