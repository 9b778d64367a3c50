"""Disk budget: drop order, unsent alerts never dropped, a full disk handled."""

from __future__ import annotations

import random
from pathlib import Path

from storage import StoreFull
from tests.kit import make_alert, make_read, open_store
from tests.kit.people import INVESTIGATOR


def test_budget_drops_overviews_then_crops_never_unsent_alerts(tmp_path: Path) -> None:
    rng = random.Random(31)
    with open_store(tmp_path / "s.db", max_db_mb=2.0) as s:
        alerts = []
        for i in range(120):
            r = make_read(rng, crop_bytes=4000, overview_bytes=20000)
            a = [make_alert(r, rng=rng)] if i % 10 == 0 else []
            s.put_read(r, a)
            alerts += a
        res = s.enforce_budget()
        assert s.used_bytes() <= 2 * 1024 * 1024
        stats = s.stats()
        assert stats["overview_dropped"] > 0
        assert stats["sent_reads_dropped"] == 0  # nothing was sent yet
        # every alert is still deliverable with its read and images
        batch = s.next_outbox_batch(1000, 10**9, include_images=True)
        got = {b.item_id for b in batch if b.kind == "alert"}
        assert got == {a.alert_id for a in alerts}
        assert all("overview_jpeg_b64" in b.payload for b in batch if b.kind == "alert")
        drops = [e for e in s.audit_entries() if e.action == "budget.drop"]
        assert (
            drops and sum(e.detail["overview_dropped"] for e in drops) == stats["overview_dropped"]
        )
        assert res.budget_bytes == 2 * 1024 * 1024
        assert s.verify_audit().ok


def test_budget_drops_sent_reads_before_unsent(tmp_path: Path) -> None:
    rng = random.Random(32)
    with open_store(tmp_path / "s.db", max_db_mb=1.0) as s:
        reads = [make_read(rng, crop_bytes=30000) for _ in range(60)]
        for r in reads[:30]:
            s.put_read(r)
        batch = s.next_outbox_batch(30, 10**9)
        s.mark_sent([b.item_id for b in batch])
        for r in reads[30:]:
            s.put_read(r)
        for _ in range(3):
            s.enforce_budget()
        stats = s.stats()
        assert stats["crops_dropped"] > 0
        # crops go before any read; then only already-sent reads are dropped
        assert stats["unsent_reads_dropped"] == 0 or stats["sent_reads_dropped"] == 30
        assert s.outbox_depth()["reads"] + stats["unsent_reads_dropped"] == 30
        assert s.used_bytes() <= 1024 * 1024


def test_unsent_alerts_survive_even_when_over_budget(tmp_path: Path) -> None:
    rng = random.Random(33)
    with open_store(tmp_path / "s.db", max_db_mb=1.0) as s:
        alerts = []
        for _ in range(80):
            r = make_read(rng, crop_bytes=20000)
            a = make_alert(r, rng=rng)
            s.put_read(r, [a])
            alerts.append(a)
        res = s.enforce_budget()
        assert res.over_budget and s.health().over_budget and not s.health().ok
        assert s.outbox_depth()["alerts"] == 80
        assert s.stats()["crops_dropped"] == 0


def test_writer_keeps_store_under_budget_continuously(tmp_path: Path) -> None:
    rng = random.Random(34)
    with open_store(tmp_path / "s.db", max_db_mb=2.0) as s:
        peak = 0
        for _ in range(400):
            s.put_read(make_read(rng, crop_bytes=3000, overview_bytes=12000))
            peak = max(peak, s.used_bytes())
        s.enforce_budget()
        assert s.used_bytes() <= 2 * 1024 * 1024
        # the writer checks every few batches, so overshoot stays bounded
        assert peak < 4 * 1024 * 1024
        assert s.outbox_depth()["reads"] + s.stats()["unsent_reads_dropped"] == 400


def test_disk_full_drops_droppable_data_and_retries(tmp_path: Path) -> None:
    rng = random.Random(35)
    with open_store(tmp_path / "s.db") as s:
        for _ in range(40):
            s.put_read(make_read(rng, overview_bytes=30000))
        pages = s._db.conn.execute("PRAGMA page_count").fetchone()[0]
        # A full filesystem, as SQLite sees it: no page beyond the current file.
        s._db.conn.execute(f"PRAGMA max_page_count = {pages + 2}")
        r = make_read(rng, crop_bytes=20000)
        s.put_read(r)  # must succeed by dropping overview images
        assert s.stats()["overview_dropped"] > 0
        assert len(s.get_reads([r.read_id], INVESTIGATOR)) == 1


def test_disk_full_with_nothing_droppable_raises_store_full(tmp_path: Path) -> None:
    rng = random.Random(36)
    with open_store(tmp_path / "s.db", drop_unsent_reads_when_full=False) as s:
        for _ in range(10):
            r = make_read(rng, crop_bytes=1000)
            s.put_read(r, [make_alert(r, rng=rng)])
        pages = s._db.conn.execute("PRAGMA page_count").fetchone()[0]
        s._db.conn.execute(f"PRAGMA max_page_count = {pages}")
        big = make_read(rng, crop_bytes=200_000)
        try:
            s.put_read(big)
            raise AssertionError("expected StoreFull")
        except StoreFull:
            pass
        assert s.outbox_depth()["alerts"] == 10
        assert s.health().last_error is not None
        s._db.conn.execute("PRAGMA max_page_count = 1073741823")
        s.put_read(make_read(rng))  # recovers once space is back
