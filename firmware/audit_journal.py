"""Config changes, provisioning steps and key rotations in the audit chain, including those made
while the daemon was stopped.

The chain lives in the store, which only the daemon (or a CLI holding the KEK) opens. So:

* ``vigil provision`` and ``vigil provision --install-cert`` append each step to a small
  journal beside the store (``<state_dir>/audit-pending.jsonl``, 0600); the daemon moves its
  lines into the chain at start (:func:`import_pending`), then deletes it. A KEK rotation
  destroys the old store and its chain: the journal is how the new chain learns it happened.
* At every start the daemon compares the SHA-256 of the config file with the one the chain last
  recorded (:func:`record_config_at_start`): an edit made while it was stopped, by provisioning
  or by hand, is audited as ``config.changed_while_stopped``. A SIGHUP reload records the new
  hash (``config.reload``), so only a change the daemon did not apply shows up at start.

Deleting the journal before the next start hides the provisioning steps, not the config edit
they made (the hash still differs); see docs/threat-model.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from drivers.clock import Clock

log = logging.getLogger(__name__)

JOURNAL_NAME = "audit-pending.jsonl"
#: Audit actions that record the config's hash (the last one is what the next start compares).
CONFIG_ACTIONS = ("config.first_seen", "config.changed_while_stopped", "config.reload")
ACTOR, ROLE = "vigil", "system"


class AuditSink(Protocol):
    """The part of ``storage.store.Store`` used here."""

    def audit(self, actor: str, role: str, action: str, reason: str, result: str,
              detail: dict[str, Any] | None = None) -> Any: ...

    def last_audit_detail(self, actions: tuple[str, ...], key: str) -> Any: ...


def config_sha256(source: str) -> str:
    """SHA-256 of the config file's bytes ("" when the settings came from no file)."""
    try:
        return hashlib.sha256(Path(source).read_bytes()).hexdigest()
    except (OSError, ValueError):
        return ""


def note(state_dir: Path, action: str, result: str, detail: Mapping[str, Any],
         clock: Clock, actor: str = "installer", *, uid: int = -1, gid: int = -1) -> None:
    """Append one step to the journal (created 0600, owned by ``uid``/``gid`` when given: the
    daemon's user must read and delete it), fsynced before returning."""
    path = Path(state_dir) / JOURNAL_NAME
    line = json.dumps({"ts": clock.utcnow().isoformat(), "actor": actor, "action": action,
                       "result": result, "detail": dict(detail)}, sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0),
                 0o600)
    try:
        if uid != -1 or gid != -1:
            os.fchown(fd, uid, gid)
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def import_pending(store: AuditSink, state_dir: Path) -> int:
    """Move the journal's steps into the audit chain (in order), then delete the journal.
    A line that is not a step is audited as such rather than dropped."""
    path = Path(state_dir) / JOURNAL_NAME
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return 0
    n = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            step = json.loads(line)
            action, result = str(step["action"]), str(step["result"])
            detail = {**dict(step.get("detail") or {}), "recorded_at": str(step["ts"])}
            actor = str(step.get("actor") or "installer")
        except (ValueError, KeyError, TypeError, AttributeError):
            action, result, detail, actor = "provision.unreadable_step", "unreadable", {
                "line": line[:200]}, "installer"
        store.audit(actor, "installer", action, "recorded while the daemon was stopped",
                    result, detail)
        n += 1
    path.unlink()
    log.info("provisioning steps moved into the audit chain", extra={"steps": n})
    return n


def record_config_at_start(store: AuditSink, source: str) -> str | None:
    """Audit the config if it differs from the last one the chain recorded; returns the
    action written (None when unchanged)."""
    digest = config_sha256(source)
    last = store.last_audit_detail(CONFIG_ACTIONS, "config_sha256")
    if last == digest:
        return None
    action = "config.first_seen" if last is None else "config.changed_while_stopped"
    store.audit(ACTOR, ROLE, action, "config file at start", "ok",
                {"config": source, "config_sha256": digest, "previous_sha256": last})
    if last is not None:
        log.warning("config changed while the daemon was stopped",
                    extra={"config": source, "config_sha256": digest})
    return action
