"""The uplink worker's status record (``Uplink.status()``; ``as_dict()`` is `vigil status`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from firmware.link.state import LinkStatus


@dataclass(frozen=True)
class UplinkStatus:
    link: LinkStatus
    last_success: datetime | None
    last_error: str | None
    backlog: Mapping[str, Any]  # outbox depth by kind, or {"error": ...} when the store is unwell
    bytes_today: int
    daily_bytes_cap: int
    next_attempt_in_s: float
    reads_sent: int
    alerts_sent: int
    requests_failed: int
    partial_batches: int
    rejected_permanent: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "link": self.link.as_dict(),
            "last_success": self.last_success.isoformat() if self.last_success else None,
            "last_error": self.last_error,
            "backlog": dict(self.backlog),
            "bytes_today": self.bytes_today,
            "daily_bytes_cap": self.daily_bytes_cap,
            "next_attempt_in_s": self.next_attempt_in_s,
            "reads_sent": self.reads_sent,
            "alerts_sent": self.alerts_sent,
            "requests_failed": self.requests_failed,
            "partial_batches": self.partial_batches,
            "rejected_permanent": self.rejected_permanent,
        }
