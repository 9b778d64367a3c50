"""Encrypted store-and-forward: reads, images, alerts, outbox, audit chain, counters.

Public names are re-exported here; the modules behind them are implementation detail.
"""

from storage.audit import verify_chain
from storage.errors import (
    AccessDenied,
    CorruptStore,
    InsecureKeyFile,
    InvalidSettings,
    KeyDestroyed,
    KeySourceError,
    SchemaTooNew,
    StoreClosed,
    StoreError,
    StoreFull,
    TamperDetected,
)
from storage.health import CorruptionRecovery, StoreHealth
from storage.keys import FileKeySource, KeySource, MemoryKeySource
from storage.records import (
    AlertRecord,
    AuditCheckpoint,
    AuditEntry,
    BudgetResult,
    OutboxItem,
    PurgeResult,
    ReadRecord,
    VerifyReport,
)
from storage.settings import RETENTION_POLICY_MAX_DAYS, StoreSettings
from storage.store import Store

__all__ = [
    "RETENTION_POLICY_MAX_DAYS",
    "AccessDenied",
    "AlertRecord",
    "AuditCheckpoint",
    "AuditEntry",
    "BudgetResult",
    "CorruptStore",
    "CorruptionRecovery",
    "FileKeySource",
    "InsecureKeyFile",
    "InvalidSettings",
    "KeyDestroyed",
    "KeySource",
    "KeySourceError",
    "MemoryKeySource",
    "OutboxItem",
    "PurgeResult",
    "ReadRecord",
    "SchemaTooNew",
    "Store",
    "StoreClosed",
    "StoreError",
    "StoreFull",
    "StoreHealth",
    "StoreSettings",
    "TamperDetected",
    "VerifyReport",
    "verify_chain",
]
