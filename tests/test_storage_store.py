"""Store round trips, outbox order and idempotency, access control, concurrency."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from storage import (
    AccessDenied,
    InvalidSettings,
    MemoryKeySource,
    Store,
    StoreClosed,
    StoreError,
    StoreSettings,
)
from storage.roles import Caller, Role
from tests.kit import make_alert, make_read, open_store
from tests.kit.people import INVESTIGATOR
from tests.kit.plaintext import PlainSuite


def test_put_read_roundtrip_with_images(store: Store) -> None:
    rng = random.Random(1)
    r = make_read(rng, plate="AB123CD", crop_bytes=20_000, overview_bytes=50_000)
    store.put_read(r)
    [back] = store.get_reads([r.read_id], INVESTIGATOR)
    assert back == r
    assert back.crop_jpeg == r.crop_jpeg and back.overview_jpeg == r.overview_jpeg


def test_no_plaintext_plate_or_image_in_database_file(tmp_path: Path) -> None:
    rng = random.Random(2)
    path = tmp_path / "s.db"
    r = make_read(rng, plate="ZQ987XY", crop_bytes=5000)
    with open_store(path) as s:
        s.put_read(r, [make_alert(r, rng=rng)])
    raw = path.read_bytes()
    assert b"ZQ987XY" not in raw
    assert r.crop_jpeg is not None and r.crop_jpeg[:64] not in raw
    assert b"stolen" not in raw  # the hotlist name is sealed too


def test_outbox_order_alerts_first_by_priority_then_oldest(store: Store) -> None:
    rng = random.Random(3)
    reads = [make_read(rng) for _ in range(6)]
    store.put_read(reads[0])
    store.put_read(reads[1], [make_alert(reads[1], priority=1, rng=rng)])
    store.put_read(reads[2])
    store.put_read(reads[3], [make_alert(reads[3], priority=9, rng=rng)])
    store.put_read(reads[4])
    store.put_read(reads[5])
    assert store.outbox_depth() == {"alerts": 2, "reads": 6}
    batch = store.next_outbox_batch(100, 10**9)
    kinds = [(b.kind, b.read_id) for b in batch]
    assert kinds[:2] == [("alert", reads[3].read_id), ("alert", reads[1].read_id)]
    assert [rid for k, rid in kinds[2:]] == [r.read_id for r in reads]
    alert = batch[0]
    assert alert.payload["read"]["plate_text"] == reads[3].plate_text
    assert alert.payload["hotlist_name"] == "stolen"
    assert "crop_jpeg_b64" not in alert.payload


def test_outbox_respects_limits_and_images_only_on_request(store: Store) -> None:
    rng = random.Random(4)
    for _ in range(5):
        store.put_read(make_read(rng, crop_bytes=3000))
    assert len(store.next_outbox_batch(3, 10**9)) == 3
    one = store.next_outbox_batch(5, 10)  # a tiny byte cap still makes progress
    assert len(one) == 1
    with_img = store.next_outbox_batch(5, 10**9, include_images=True)
    assert all("crop_jpeg_b64" in i.payload for i in with_img)
    capped = store.next_outbox_batch(5, 6000, include_images=True)
    assert 1 <= len(capped) < 5


def test_mark_sent_is_idempotent_and_audited(store: Store) -> None:
    rng = random.Random(5)
    for _ in range(4):
        store.put_read(make_read(rng))
    batch = store.next_outbox_batch(2, 10**9)
    store.record_attempt([b.item_id for b in batch])
    store.record_attempt([b.item_id for b in batch])
    again = store.next_outbox_batch(2, 10**9)
    assert [b.attempts for b in again] == [2, 2]
    assert store.mark_sent([b.item_id for b in batch]) == 2
    assert store.mark_sent([b.item_id for b in batch]) == 0
    assert store.mark_sent(["no-such-item"]) == 0
    assert store.outbox_depth() == {"alerts": 0, "reads": 2}
    acks = [e for e in store.audit_entries() if e.action == "uplink.ack"]
    assert len(acks) == 1 and acks[0].detail == {"items": 2}
    assert store.stats()["uplinked"] == 2


def test_put_read_is_idempotent_on_read_id(store: Store) -> None:
    r = make_read(random.Random(6))
    store.put_read(r)
    store.put_read(r)
    assert store.outbox_depth()["reads"] == 1
    assert store.stats()["reads"] == 1


def test_search_uses_blind_index_is_audited_and_counted(store: Store) -> None:
    rng = random.Random(7)
    target = [make_read(rng, plate="AB123CD") for _ in range(3)]
    for r in target:
        store.put_read(r)
    store.put_read(make_read(rng, plate="AB123CE"))
    alice = Caller("console:alice", Role.INVESTIGATOR, "case 2026-17")
    found = store.search_plate("ab 123-cd", alice)
    assert {f.read_id for f in found} == {r.read_id for r in target}
    assert store.search_plate("NOPE99", alice) == []
    entries = [e for e in store.audit_entries() if e.action == "plate.search"]
    assert [e.detail["results"] for e in entries] == [3, 0]
    assert {(e.actor, e.role, e.reason) for e in entries} == {
        ("console:alice", "investigator", "case 2026-17")}
    assert all("AB123CD" not in str(e.detail) for e in entries)
    stats = store.stats()
    assert stats["searches"] == 2 and stats["vehicles"] == 2 and stats["reads"] == 4


# The technician may not search with any reason (it was in the default search_roles and a
# three-character reason was enough); an investigator needs a case number, not just words.
@pytest.mark.parametrize(("role", "reason"), [
    (Role.TECHNICIAN, "case 2026-1142"), (Role.TECHNICIAN, "abc"),
    (Role.INSTALLER, "case 2026-1142"), (Role.ADMIN, "case 2026-1142"),
    (Role.INVESTIGATOR, "abc"), (Role.INVESTIGATOR, "case 1"), (Role.INVESTIGATOR, "  ")])
def test_read_data_refused_without_role_or_case_number_and_audited(
    store: Store, role: Role, reason: str
) -> None:
    r = make_read(random.Random(3), plate="AB123CD")
    store.put_read(r)
    mallory = Caller("console:mallory", role, reason)
    with pytest.raises(AccessDenied):
        store.search_plate("AB123CD", mallory)
    with pytest.raises(AccessDenied):
        store.get_reads([r.read_id], mallory)
    denied = [e for e in store.audit_entries() if e.action in ("plate.search", "reads.get")]
    assert [(e.action, e.result, e.actor, e.role) for e in denied] == [
        ("plate.search", "denied", "console:mallory", role.value),
        ("reads.get", "denied", "console:mallory", role.value)]
    assert store.stats()["searches_denied"] == 2


def test_search_roles_are_checked_against_the_fixed_role_set() -> None:
    assert StoreSettings().search_roles == ("investigator",)
    StoreSettings(search_roles=("investigator", "admin"))
    for bad in (("technician",), ("investigator", "installer"), ("operator",), (),
                ("admin", "admin")):
        with pytest.raises(InvalidSettings, match="search_roles"):
            StoreSettings(search_roles=bad)


def test_config_refuses_a_technician_in_search_roles_with_the_key_named() -> None:
    from firmware import config

    site = {"site_latitude": 45.0, "site_longitude": -122.0}
    for roles in (["technician"], ["operator"], ["investigator", "x"]):
        with pytest.raises(config.ConfigError, match=r"\[store\].*search_roles"):
            config.validate({"unit": site, "store": {"search_roles": roles}}, "test.toml")
    ok = config.validate({"unit": site, "store": {"search_roles": ["admin"]}}, "test.toml")
    assert ok.store.search_roles == ("admin",)


def test_admin_reads_data_only_where_the_agency_configured_it(tmp_path: Path) -> None:
    admin = Caller("console:root-ops", Role.ADMIN, "case AG-2026-7")
    settings = StoreSettings(search_roles=("investigator", "admin"))
    with open_store(tmp_path / "a.db", settings=settings) as s:
        s.put_read(make_read(random.Random(4), plate="AB123CD"))
        assert len(s.search_plate("AB123CD", admin)) == 1


def test_concurrent_writers_and_uplink_reader(store: Store) -> None:
    rng_lock = threading.Lock()
    rng = random.Random(8)
    written: list[str] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(150):
                with rng_lock:
                    r = make_read(rng, crop_bytes=1000)
                store.put_read(r)
                with rng_lock:
                    written.append(r.read_id)
        except BaseException as e:  # noqa: BLE001 - surfaced below
            errors.append(e)

    sent: set[str] = set()
    stop = threading.Event()

    def uplink() -> None:
        try:
            while not stop.is_set() or store.outbox_depth()["reads"]:
                batch = store.next_outbox_batch(50, 10**9)
                store.mark_sent([b.item_id for b in batch])
                sent.update(b.item_id for b in batch)
        except BaseException as e:  # noqa: BLE001 - surfaced below
            errors.append(e)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    up = threading.Thread(target=uplink)
    up.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    up.join()
    assert not errors
    assert sent == set(written) and len(written) == 600
    assert store.verify_audit().ok


def test_derive_key_is_stable_per_kek(tmp_path: Path) -> None:
    ks = MemoryKeySource()
    with open_store(tmp_path / "a.db", ks) as a:
        k1 = a.derive_key("hotlist")
    with open_store(tmp_path / "a.db", ks) as a:
        assert a.derive_key("hotlist") == k1
        assert a.derive_key("other") != k1


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    s = open_store(tmp_path / "s.db")
    s.close()
    s.close()
    with pytest.raises(StoreClosed):
        s.put_read(make_read(random.Random(9)))
    with pytest.raises(StoreClosed):
        s.outbox_depth()


def test_audit_chain_persists_and_has_signed_checkpoint_at_close(tmp_path: Path) -> None:
    ks = MemoryKeySource()
    path = tmp_path / "s.db"
    with open_store(path, ks, checkpoint_every=3) as s:
        for i in range(7):
            s.audit("bob", "technician", "config.change", "tune exposure", "ok", {"i": i})
    with open_store(path, ks) as s:
        rep = s.verify_audit()
        assert rep.ok, rep.problems
        assert rep.checkpoints_verified >= 3
        actions = [e.action for e in s.audit_entries()]
        assert actions.count("config.change") == 7 and "store.close" in actions


def test_plaintext_benchmark_store_is_refused_by_a_normal_open(tmp_path: Path) -> None:
    """The benchmark's plaintext suite (test kit only) marks the file it creates."""
    ks, path = MemoryKeySource(), tmp_path / "p.db"
    with open_store(path, ks, cipher_suite=PlainSuite()) as s:
        s.put_read(make_read(random.Random(4), plate="PL41NXT"))
        assert s.health().plaintext
    assert b"PL41NXT" in path.read_bytes()  # really unencrypted: a baseline, nothing more
    with pytest.raises(StoreError, match="plaintext-benchmark"):
        open_store(path, ks)


def test_dead_letters_leave_the_queue_are_kept_counted_audited_then_purged(
        tmp_path: Path) -> None:
    from datetime import timedelta

    from drivers.clock import FakeClock

    rng = random.Random(41)
    clock = FakeClock()
    with open_store(tmp_path / "s.db", clock=clock) as s:
        reads = [make_read(rng, captured_at=clock.utcnow()) for _ in range(3)]
        for r in reads:
            s.put_read(r)
        items = s.next_outbox_batch(10, 1 << 20)
        assert s.dead_letter({items[0].item_id: "invalid"}) == 1
        assert s.dead_letter({items[0].item_id: "invalid"}) == 0  # idempotent
        assert s.outbox_depth()["reads"] == 2
        assert all(i.item_id != items[0].item_id for i in s.next_outbox_batch(10, 1 << 20))
        (dead,) = s.dead_letters()
        assert (dead.item_id, dead.reason, dead.read_id) == (items[0].item_id, "invalid",
                                                              reads[0].read_id)
        assert s.health().dead_letter_items == 1
        assert s.health().as_dict()["dead_letter_items"] == 1
        assert len(s.get_reads([reads[0].read_id], INVESTIGATOR)) == 1  # kept
        actions = [e.action for e in s.audit_entries()]
        assert actions.count("outbox.dead_letter") == 1
        clock.advance(timedelta(days=60).total_seconds())
        s.purge_expired()
        assert s.dead_letters() == [] and s.health().dead_letter_items == 0
