"""`vigil audit verify|export|pubkey` and `vigil stats` through argparse, on a real store."""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
from pathlib import Path

import pytest

from firmware.cli import cmd_storage
from storage import MemoryKeySource
from tests.kit import make_read, open_store
from tests.kit.people import INVESTIGATOR


def _parser(db: Path, ks: MemoryKeySource) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)
    cmd_storage.register(sub, lambda _cfg: open_store(db, ks))
    return p


def _run(p: argparse.ArgumentParser, *argv: str) -> int:
    args = p.parse_args(list(argv))
    return int(args.func(args))


def test_verify_export_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ks, db = MemoryKeySource(), tmp_path / "s.db"
    with open_store(db, ks) as s:
        s.put_read(make_read(random.Random(1), plate="AB123CD"))
        s.search_plate("AB123CD", INVESTIGATOR)
    p = _parser(db, ks)
    assert _run(p, "audit", "verify", "--json") == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["ok"] and rep["checkpoints_verified"] >= 1
    out = tmp_path / "export.jsonl"
    assert _run(p, "audit", "export", "-o", str(out)) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines[0]["format"] == "vigil-audit-export/1"
    assert any(e["action"] == "plate.search" for e in lines[1:])
    assert "alice" not in out.read_text() and "AB123CD" not in out.read_text()
    capsys.readouterr()
    assert _run(p, "stats", "--json") == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["reads"] == 1 and stats["searches"] == 1
    with sqlite3.connect(str(db)) as c:
        c.execute("UPDATE audit SET actor='nobody' WHERE action='plate.search'")
    assert _run(p, "audit", "verify") == 1
    assert "TAMPERED" in capsys.readouterr().out


def test_dead_letters_are_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ks, db = MemoryKeySource(), tmp_path / "s.db"
    with open_store(db, ks) as s:
        s.put_read(make_read(random.Random(2), plate="AB123CD"))
        (item,) = s.next_outbox_batch(10, 1 << 20)
        s.dead_letter({item.item_id: "invalid"})
    assert _run(_parser(db, ks), "dead-letters") == 0
    out = capsys.readouterr().out
    (line,) = [json.loads(x) for x in out.splitlines()]
    assert line["item_id"] == item.item_id and line["reason"] == "invalid"
    assert "AB123CD" not in out
