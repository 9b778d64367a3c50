"""`vigil audit verify|export|pubkey`, `vigil stats` and `vigil dead-letters`: front-ends of
storage (may print)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from storage.audit import checkpoint_from_json, verify_against, verify_chain
from storage.records import AuditCheckpoint
from storage.store import Store

OpenStore = Callable[[Path | None], Store]


def register(subparsers: argparse._SubParsersAction, open_store: OpenStore) -> None:  # type: ignore[type-arg]
    """Mount ``audit`` and ``stats``. ``open_store(config_path)`` returns an opened Store."""
    audit = subparsers.add_parser("audit", help="verify or export the tamper-evident audit log")
    asub = audit.add_subparsers(dest="audit_command", required=True)

    verify = asub.add_parser("verify", help="check the hash chain and signed checkpoints")
    verify.add_argument("--config", type=Path)
    verify.add_argument(
        "--public-key",
        help="hex Ed25519 key to verify checkpoints with (default: the device's own; pass the "
        "key recorded at commissioning to detect a chain re-signed with a replaced key)",
    )
    verify.add_argument(
        "--against", type=Path, metavar="CHECKPOINTS",
        help="JSON lines of the checkpoints this unit published (kept by the agency's ingest "
        "service): detects a cut, edit or re-sign behind the last published head; missing or "
        "out-of-order checkpoints fail")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(func=lambda a: _verify(a, open_store))

    export = asub.add_parser("export", help="write the anonymised log for a transparency portal")
    export.add_argument("--config", type=Path)
    export.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    export.set_defaults(func=lambda a: _export(a, open_store))

    pub = asub.add_parser("pubkey", help="print the device's checkpoint public key (hex)")
    pub.add_argument("--config", type=Path)
    pub.set_defaults(func=lambda a: _pubkey(a, open_store))

    stats = subparsers.add_parser("stats", help="transparency counters over the past days")
    stats.add_argument("--config", type=Path)
    stats.add_argument("--window-days", type=int, default=30)
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(func=lambda a: _stats(a, open_store))

    dead = subparsers.add_parser(
        "dead-letters", help="outbox items the agency rejected for good (kept until retention)")
    dead.add_argument("--config", type=Path)
    dead.add_argument("--limit", type=int, default=1000)
    dead.set_defaults(func=lambda a: _dead_letters(a, open_store))


def _published(path: Path) -> list[AuditCheckpoint]:
    """The checkpoints in a JSON-lines file, in file order (= the order received)."""
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append(checkpoint_from_json(json.loads(line)))
            except ValueError as e:
                raise SystemExit(f"{path}:{n}: {e}") from e
    return out


def _verify(args: argparse.Namespace, open_store: OpenStore) -> int:
    published = None if args.against is None else _published(args.against)
    with open_store(args.config) as store:
        key = bytes.fromhex(args.public_key) if args.public_key else store.audit_public_key()
        if published is None:
            report = verify_chain(store.audit_entries(), key, store.audit_checkpoints())
        else:
            report = verify_against(store.audit_entries(), key, published,
                                    store.audit_checkpoints())
    if args.json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "entries": report.entries,
                    "last_seq": report.last_seq,
                    "checkpoints_verified": report.checkpoints_verified,
                    "problems": list(report.problems),
                }
            )
        )
    else:
        state = "OK" if report.ok else "TAMPERED"
        print(
            f"audit chain {state}: {report.entries} entries (last seq {report.last_seq}), "
            f"{report.checkpoints_verified} signed checkpoints verified"
        )
        for p in report.problems:
            print(f"  - {p}")
    return 0 if report.ok else 1


def _export(args: argparse.Namespace, open_store: OpenStore) -> int:
    with open_store(args.config) as store:
        if args.output:
            with open(args.output, "w", encoding="utf-8") as f:
                n = store.export_audit(f)
            print(f"wrote {n} entries to {args.output}", file=sys.stderr)
        else:
            store.export_audit(sys.stdout)
    return 0


def _pubkey(args: argparse.Namespace, open_store: OpenStore) -> int:
    with open_store(args.config) as store:
        print(store.audit_public_key().hex())
    return 0


def _stats(args: argparse.Namespace, open_store: OpenStore) -> int:
    with open_store(args.config) as store:
        s: dict[str, Any] = store.stats(window_days=args.window_days)
    if args.json:
        print(json.dumps(s))
    else:
        for k, v in s.items():
            print(f"{k}: {v}")
    return 0


def _dead_letters(args: argparse.Namespace, open_store: OpenStore) -> int:
    """One JSON line per dead letter: ids, day, attempts and the agency's reason (no plate)."""
    with open_store(args.config) as store:
        for d in store.dead_letters(args.limit):
            print(json.dumps({"item_id": d.item_id, "kind": d.kind, "read_id": d.read_id,
                              "day": d.day, "attempts": d.attempts, "reason": d.reason}))
    return 0
