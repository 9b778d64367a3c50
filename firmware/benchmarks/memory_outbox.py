"""An outbox in memory: the uplink benchmark's source (the uplink alone, without the store), and
the uplink tests'."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from firmware.uplink.wire import json_default


@dataclass(frozen=True)
class MemoryOutboxItem:
    item_id: str
    kind: str
    read_id: str
    payload: Mapping[str, Any]
    created_at: datetime
    attempts: int


class MemoryOutbox:
    """An :class:`OutboxSource` held in memory, for tests, benchmarks and the simulation rig.

    It behaves like the store's outbox: alerts before reads, each kind in insertion order (never
    by wall-clock time, which may jump), ``max_items``/``max_bytes`` respected (one item always
    fits), image fields (keys starting ``image``) left out unless asked for, ``mark_sent``
    idempotent, attempts counted. ``sent_order`` records what was marked sent, in order.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, dict[str, Any]]] = {"alert": {}, "read": {}}
        self._sent: set[str] = set()
        self.dead: dict[str, str] = {}  # dead-lettered item id -> reason
        self.sent_order: list[str] = []
        self.audit_log: list[tuple[Any, ...]] = []
        self._n = 0

    def add(
        self, kind: str, read_id: str, payload: Mapping[str, Any], created_at: datetime,
        item_id: str | None = None,
    ) -> str:
        if kind not in self._pending:
            raise ValueError(f"unknown outbox kind {kind!r}")
        with self._lock:
            self._n += 1
            iid = item_id or f"{kind[0]}{self._n:09d}"
            if iid in self._sent or iid in self._pending[kind]:
                return iid
            size = len(json.dumps(payload, default=json_default))
            self._pending[kind][iid] = {
                "read_id": read_id, "payload": dict(payload), "created_at": created_at,
                "attempts": 0, "size": size,
            }
            return iid

    def next_outbox_batch(
        self, max_items: int, max_bytes: int, include_images: bool = False
    ) -> list[MemoryOutboxItem]:
        out: list[MemoryOutboxItem] = []
        total = 0
        with self._lock:
            for kind in ("alert", "read"):
                for iid, rec in self._pending[kind].items():
                    if len(out) >= max_items or (out and total + rec["size"] > max_bytes):
                        return out
                    payload = rec["payload"]
                    if not include_images:
                        payload = {k: v for k, v in payload.items() if not k.startswith("image")}
                    total += rec["size"]
                    out.append(
                        MemoryOutboxItem(iid, kind, rec["read_id"], payload, rec["created_at"],
                                         rec["attempts"])
                    )
        return out

    def mark_sent(self, item_ids: Sequence[str]) -> int:
        n = 0
        with self._lock:
            for iid in item_ids:
                for pend in self._pending.values():
                    if pend.pop(iid, None) is not None:
                        self._sent.add(iid)
                        self.sent_order.append(iid)
                        n += 1
        return n

    def record_attempt(self, item_ids: Sequence[str]) -> None:
        with self._lock:
            for iid in item_ids:
                for pend in self._pending.values():
                    if iid in pend:
                        pend[iid]["attempts"] += 1

    def dead_letter(self, reasons: Mapping[str, str]) -> int:
        """Like the store: out of the queue, kept (``dead``), audited."""
        n = 0
        with self._lock:
            for iid, why in reasons.items():
                for pend in self._pending.values():
                    item = pend.pop(iid, None)
                    if item is not None:
                        self.dead[iid] = why
                        n += 1
            if n:
                self.audit_log.append(("vigil", "uplink", "outbox.dead_letter",
                                       "agency rejected permanently", "kept_until_retention",
                                       {"items": n}))
        return n

    def outbox_depth(self) -> dict[str, int]:
        with self._lock:
            return {"alerts": len(self._pending["alert"]), "reads": len(self._pending["read"])}

    def audit(
        self, actor: str, role: str, action: str, reason: str, result: str, detail: Any = None
    ) -> None:
        with self._lock:
            self.audit_log.append((actor, role, action, reason, result, detail))
