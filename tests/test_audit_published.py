"""Tamper evidence off the unit: signed audit heads leave with every uplink batch and heartbeat,
the reference ingest service keeps them, and `vigil audit verify --against CHECKPOINTS` catches
what someone with the card (and the key file on it) does behind the last published head.

Each attack edits the real database file with sqlite3, as an attacker with the card would;
`vigil audit verify` alone stays at OK for the cut and the recomputed chain (what the issue
reproduced), `--against` does not.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drivers.clock import FakeClock
from firmware.cli import cmd_storage
from firmware.link.state import LinkStateMachine
from firmware.uplink.worker import AUDIT_HEARTBEAT_S, Uplink
from hil.certs import TestPki
from hil.ingest_server import Fault, IngestServer
from storage import MemoryKeySource
from storage.audit import (
    GENESIS_HASH,
    canonical_bytes,
    checkpoint_from_json,
    entry_hash,
    sign_checkpoint,
    verify_against,
)
from storage.crypto import KeyHierarchy
from storage.records import AuditEntry
from tests.kit import make_read, open_store
from tests.test_uplink_client import settings_for

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
KEK = bytes(range(1, 33))


def _run(db: Path, *argv: str) -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)
    cmd_storage.register(sub, lambda _cfg: open_store(db, MemoryKeySource(KEK)))
    args = p.parse_args(list(argv))
    return int(args.func(args))


def _unit(tmp_path: Path) -> tuple[Path, Path, int]:
    """A store whose head was published three times (lines of the CHECKPOINTS file, each
    acknowledged), with entries after the last publication. Returns (db, checkpoints file,
    last published seq)."""
    db, out = tmp_path / "s.db", tmp_path / "checkpoints.jsonl"
    lines = []
    with open_store(db, MemoryKeySource(KEK), FakeClock(T0)) as s:
        for i in range(30):
            s.audit("tech", "technician", "console.command", "maintenance", "ok", {"n": i})
            if i in (4, 9, 24):
                doc = s.published_checkpoint("cam1")
                assert doc is not None
                lines.append(json.dumps(doc))
                s.checkpoint_published(doc["number"])
    out.write_text("\n".join(lines) + "\n")
    return db, out, json.loads(lines[-1])["seq"]


def _rows(c: sqlite3.Connection) -> list[tuple[object, ...]]:
    return c.execute("SELECT seq, ts, actor, role, action, reason, result, detail FROM audit"
                     " ORDER BY seq").fetchall()


def _recompute_chain(c: sqlite3.Connection) -> list[AuditEntry]:
    """Rewrite every hash so the chain links again, as anyone can without a key."""
    prev, entries = GENESIS_HASH, []
    for seq, ts, actor, role, action, reason, result, detail in _rows(c):
        t, d = datetime.fromisoformat(str(ts)), json.loads(str(detail))
        h = entry_hash(prev, canonical_bytes(int(seq), t, str(actor), str(role), str(action),  # type: ignore[call-overload]
                                             str(reason), str(result), d))
        c.execute("UPDATE audit SET prev_hash=?, entry_hash=? WHERE seq=?", (prev, h, seq))
        entries.append(AuditEntry(int(seq), t, str(actor), str(role), str(action),  # type: ignore[call-overload]
                                  str(reason), str(result), d, prev, h))
        prev = h
    return entries


def _cut_tail(c: sqlite3.Connection, head: int) -> None:
    c.execute("DELETE FROM audit WHERE seq > ?", (head - 5,))
    c.execute("DELETE FROM audit_checkpoints WHERE seq > ?", (head - 5,))


def _edit_recompute_drop_checkpoints(c: sqlite3.Connection, head: int) -> None:
    c.execute("UPDATE audit SET reason='nothing to see' WHERE seq = 12")
    _recompute_chain(c)
    c.execute("DELETE FROM audit_checkpoints")


def _edit_recompute_resign(c: sqlite3.Connection, head: int) -> None:
    """With the key file from the same card: the local checkpoints verify again."""
    c.execute("UPDATE audit SET reason='nothing to see' WHERE seq = 12")
    entries = {e.seq: e for e in _recompute_chain(c)}
    key = KeyHierarchy(KEK).signing_key
    c.execute("DELETE FROM audit_checkpoints")
    for seq in (10, 25, max(entries)):
        cp = sign_checkpoint(key, entries[seq], T0)
        c.execute("INSERT INTO audit_checkpoints VALUES (?, ?, ?, ?)",
                  (cp.seq, cp.entry_hash, cp.signed_at.isoformat(), cp.signature))


ATTACKS: dict[str, Callable[[sqlite3.Connection, int], None]] = {
    "cut_tail": _cut_tail,
    "edit_recompute_drop_checkpoints": _edit_recompute_drop_checkpoints,
    "edit_recompute_resign": _edit_recompute_resign,
}


def test_untouched_log_verifies_against_what_it_published(tmp_path: Path) -> None:
    db, cps, _ = _unit(tmp_path)
    assert _run(db, "audit", "verify", "--against", str(cps)) == 0


@pytest.mark.parametrize("attack", ATTACKS)
def test_tampering_behind_the_last_published_head_fails_against_it(
    tmp_path: Path, attack: str, capsys: pytest.CaptureFixture[str],
) -> None:
    db, cps, head = _unit(tmp_path)
    with sqlite3.connect(str(db), isolation_level=None) as c:
        ATTACKS[attack](c, head)
    assert _run(db, "audit", "verify") == 0  # on the unit alone it still looks fine
    capsys.readouterr()
    assert _run(db, "audit", "verify", "--against", str(cps), "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert not report["ok"] and report["problems"]


@pytest.mark.parametrize("mangle", ["empty", "middle_missing", "first_missing", "reversed",
                                    "forged_line"])
def test_missing_or_out_of_order_checkpoints_fail(tmp_path: Path, mangle: str) -> None:
    db, cps, _ = _unit(tmp_path)
    lines = cps.read_text().splitlines()
    assert [json.loads(x)["number"] for x in lines] == [1, 2, 3]
    if mangle == "empty":
        lines = []
    elif mangle == "middle_missing":
        del lines[1]
    elif mangle == "first_missing":
        del lines[0]
    elif mangle == "reversed":
        lines = lines[::-1]
    else:
        doc = json.loads(lines[0])
        doc["entry_hash"] = "00" * 32
        lines[0] = json.dumps(doc)
    cps.write_text("".join(x + "\n" for x in lines))
    assert _run(db, "audit", "verify", "--against", str(cps)) == 1


# ---------------------------------------------------------------- leaving the unit


@pytest.fixture
def server(pki: TestPki, tmp_path: Path):
    pub = KeyHierarchy(KEK).public_key_bytes()
    with IngestServer(pki.server.cert, pki.server.key, pki.ca, audit_public_key=pub,
                      checkpoints_out=tmp_path / "agency.jsonl") as srv:
        yield srv


def test_checkpoints_leave_with_every_batch_and_heartbeat_and_the_service_keeps_them(
    pki: TestPki, server: IngestServer, tmp_path: Path,
) -> None:
    clock = FakeClock(T0)
    db = tmp_path / "unit.db"
    with open_store(db, MemoryKeySource(KEK), clock) as store:
        rng = random.Random(4)
        for _ in range(5):
            store.put_read(make_read(rng))
        up = Uplink(settings_for(pki, server.url), store, LinkStateMachine(clock), clock,
                    rng=random.Random(1))
        with up:
            up.step()  # one batch: carries the head
            kept = server.state.checkpoints[pki.device_id]
            assert len(kept) == 1 and len(server.state.reads) == 5
            up.step()  # idle, a heartbeat is not due yet
            assert server.state.requests.get("/v1/audit-checkpoints", 0) == 0
            store.audit("tech", "technician", "console.login", "maintenance", "ok")
            clock.advance(AUDIT_HEARTBEAT_S + 1)
            up.step()  # idle for a period: the head leaves alone
            assert server.state.requests["/v1/audit-checkpoints"] == 1
            assert len(kept) == 2 and kept[1]["seq"] > kept[0]["seq"]
            assert [k["number"] for k in kept] == [1, 2]  # each acknowledged before the next
        published = [checkpoint_from_json(d) for d in kept]
        report = verify_against(store.audit_entries(), store.audit_public_key(), published)
        assert report.ok, report.problems
    assert server.state.audit_alarms == []
    lines = (tmp_path / "agency.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == kept
    assert _run(db, "audit", "verify", "--against", str(tmp_path / "agency.jsonl")) == 0


def test_the_service_raises_an_alarm_on_a_head_that_goes_backwards(
    server: IngestServer, tmp_path: Path,
) -> None:
    db = tmp_path / "u.db"
    clock = FakeClock(T0)
    with open_store(db, MemoryKeySource(KEK), clock) as s:
        first = s.published_checkpoint("cam1")
        clock.advance(5)
        s.audit("tech", "technician", "x", "y", "ok")
        second = s.published_checkpoint("cam1")
    server.keep_checkpoint("cam1", second)
    server.keep_checkpoint("cam1", first)  # an older head arriving later: a rollback
    assert any("behind" in a for a in server.state.audit_alarms)
    assert timedelta(0) <= checkpoint_from_json(second).signed_at - T0  # type: ignore[arg-type]


def test_a_lost_answer_repeats_a_number_and_never_leaves_a_gap(
    pki: TestPki, server: IngestServer, tmp_path: Path,
) -> None:
    clock = FakeClock(T0)
    db = tmp_path / "unit.db"
    with open_store(db, MemoryKeySource(KEK), clock) as store:
        rng = random.Random(6)
        for _ in range(3):
            store.put_read(make_read(rng))
        up = Uplink(settings_for(pki, server.url), store, LinkStateMachine(clock), clock,
                    rng=random.Random(1))
        server.set_fault(Fault(mode="drop_after", remaining=1))  # stored, answer lost
        with up:
            for _ in range(20):
                if not store.outbox_depth()["reads"]:
                    break
                clock.advance(up.step())
        kept = server.state.checkpoints[pki.device_id]
        assert [k["number"] for k in kept] == [1, 1]
        published = [checkpoint_from_json(d) for d in kept]
        assert verify_against(store.audit_entries(), store.audit_public_key(), published).ok
