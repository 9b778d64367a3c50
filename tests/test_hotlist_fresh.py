"""Hotlist freshness and anti-rollback (security review 16.3): issue time and expiry are signed;
an expired or older-issued list is refused; a list that goes stale or expires raises a health
warning and one audited alarm, and the next poll tells the agency; a stored list that fails its
check at start is an error in status; the version floor lives in the store, so deleting the
list file does not reopen rollback."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from drivers.clock import FakeClock
from firmware.app.status import degraded_reasons
from firmware.link.hotlists import (
    HotlistExpiredError,
    HotlistRollbackError,
    HotlistSettings,
    HotlistUpdater,
    sign_hotlist,
)
from firmware.uplink.transport import Response, TransportError
from inference.hotlist_matcher import HotlistEntry
from storage.floors import FloorTampered
from tests.kit.stores import open_store

AGENCY = Ed25519PrivateKey.generate()
PUB_B64 = base64.b64encode(AGENCY.public_key().public_bytes(
    serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()
T0 = datetime(2026, 6, 1, tzinfo=UTC)
KEY = bytes(range(32))
ENTRIES = [HotlistEntry("AB123CD", "stolen", 5)]


def doc(version: int, issued: datetime = T0, **kw: Any) -> bytes:
    return sign_hotlist(AGENCY, "stolen", version, ENTRIES, issued_at=issued, **kw)


class Agency:
    """The agency's hotlist endpoint as the updater sees it: reachable or not, and what each
    poll told it."""

    def __init__(self) -> None:
        self.reachable = True
        self.body: bytes | None = None
        self.polls: list[dict[str, str]] = []

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: Any = None, params: Any = None) -> Response:
        if not self.reachable:
            raise TransportError("connect", "network blocked")
        self.polls.append(dict(params or {}))
        out, self.body = self.body, None
        return Response(200 if out else 204, out or b"", 0.0, 0, 0)

    def close(self) -> None:
        pass


def updater(tmp_path: Path, clock: FakeClock, transport: Any = None, floors: Any = None,
            audit: list[tuple[Any, ...]] | None = None, key: bytes = KEY) -> HotlistUpdater:
    s = HotlistSettings(path=str(tmp_path / "hl"), agency_public_key=PUB_B64, names=("stolen",),
                        stale_after_s=86400)
    sink = audit if audit is not None else []
    return HotlistUpdater(s, transport, key, clock, audit=lambda *a: sink.append(a),
                          floors=floors)


def test_a_list_issued_in_2023_with_a_higher_version_is_refused(tmp_path: Path) -> None:
    up = updater(tmp_path, FakeClock(T0))
    up.accept(doc(5))
    old = datetime(2023, 3, 1, tzinfo=UTC)
    with pytest.raises(HotlistExpiredError, match="expired"):
        up.accept(doc(9, old))
    # issued before the held list, though not yet expired: refused too
    with pytest.raises(HotlistExpiredError, match="before the list held"):
        up.accept(doc(9, T0 - timedelta(hours=1)))
    assert up.versions() == {"stolen": 5}


def test_blocked_network_makes_the_list_stale_then_expired_with_one_alarm_each(
        tmp_path: Path) -> None:
    clock = FakeClock(T0)
    agency = Agency()
    audit: list[tuple[Any, ...]] = []
    up = updater(tmp_path, clock, agency, audit=audit)
    agency.body = doc(1, expires_at=T0 + timedelta(days=3))
    up.step()
    assert up.status().freshness == {"stolen": "fresh"}
    assert agency.polls[-1]["freshness"] == "none"
    agency.reachable = False
    clock.step_wall(timedelta(days=1, hours=1))
    up.step()
    up.step()
    st = up.status()
    assert st.freshness == {"stolen": "stale"}
    assert st.health_warnings() == ("hotlist_stale",)  # the failed poll itself is not one
    assert "network blocked" in st.errors["stolen"]
    alarms = [a for a in audit if a[0] == "hotlist.freshness"]
    assert len(alarms) == 1 and alarms[0][2] == "alarm" and alarms[0][3]["state"] == "stale"
    clock.step_wall(timedelta(days=2))
    up.step()
    assert up.status().freshness == {"stolen": "expired"}
    assert "hotlist_expired" in up.status().health_warnings()
    assert len([a for a in audit if a[0] == "hotlist.freshness"]) == 2
    # the daemon shows it as degraded
    assert "hotlist_expired" in degraded_reasons(None, workers_degraded=False, faults={},
                                                 warnings=up.status().health_warnings())
    # the network comes back: the first poll tells the agency what the unit went through
    agency.reachable = True
    agency.body = doc(2, T0 + timedelta(days=3))
    up.step()
    assert agency.polls[-1]["freshness"] == "expired"
    assert up.status().freshness == {"stolen": "fresh"}
    assert up.status().health_warnings() == ()
    assert audit[-1][0] == "hotlist.freshness" and audit[-1][2] == "cleared"


def test_a_tampered_list_at_start_is_an_error_in_status(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    updater(tmp_path, clock).accept(doc(3))
    path = tmp_path / "hl" / "stolen.idx"
    raw = bytearray(path.read_bytes())
    raw[20] ^= 1  # inside the first block
    path.write_bytes(bytes(raw))
    audit: list[tuple[Any, ...]] = []
    agency = Agency()
    up = updater(tmp_path, clock, agency, audit=audit)
    assert len(up.load()) == 0
    st = up.status()
    assert "tampered" in st.errors["stolen"]
    assert "hotlist_error" in st.health_warnings() and st.stored_refused == ("stolen",)
    assert audit[0][:3] == ("hotlist.load", audit[0][1], "refused")
    up.step()
    assert agency.polls[-1]["stored"] == "refused"  # the agency is told at the next poll


def test_deleting_the_list_file_does_not_reopen_rollback(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    with open_store(tmp_path / "store.db", clock=clock) as store:
        updater(tmp_path, clock, floors=store.version_floors()).accept(doc(5))
        (tmp_path / "hl" / "stolen.idx").unlink()
        again = updater(tmp_path, clock, floors=store.version_floors())
        again.load()
        with pytest.raises(HotlistRollbackError, match="below the floor 5"):
            again.accept(doc(4))
        again.accept(doc(5))  # the agency's current list is taken back
        assert again.versions() == {"stolen": 5}


def test_an_older_index_file_put_back_is_refused_at_start(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    with open_store(tmp_path / "store.db", clock=clock) as store:
        up = updater(tmp_path, clock, floors=store.version_floors())
        up.accept(doc(4))
        saved = (tmp_path / "hl" / "stolen.idx").read_bytes()
        up.accept(doc(5))
        (tmp_path / "hl" / "stolen.idx").write_bytes(saved)
        again = updater(tmp_path, clock, floors=store.version_floors())
        again.load()
        assert "below the floor 5" in again.status().errors["stolen"]


def test_an_edited_floor_is_refused(tmp_path: Path) -> None:
    with open_store(tmp_path / "store.db") as store:
        floors = store.version_floors()
        assert floors.raise_to("stolen", 7) == 7
        assert floors.raise_to("stolen", 3) == 7  # never lowered
        with store._db.transaction() as conn:
            conn.execute("UPDATE meta SET value = '2 ' || substr(value, 3) "
                         "WHERE key = 'floor:stolen'")
        with pytest.raises(FloorTampered):
            floors.get("stolen")


def test_the_mqtt_health_message_carries_each_lists_freshness(tmp_path: Path) -> None:
    """The retained health message (MQTT uplink) is how a dashboard at the agency sees the
    unit: it names a stale or refused list."""
    from firmware.app.wiring import Links

    clock = FakeClock(T0)
    up = updater(tmp_path, clock)
    up.accept(doc(1))
    clock.step_wall(timedelta(days=2))
    links = Links(None)  # type: ignore[arg-type]
    links.hotlists = up
    detail = links.health_detail(lambda status: {"link": "up"})
    assert detail == {"hotlists": {"freshness": {"stolen": "stale"},
                                   "expires_at": {"stolen": (T0 + timedelta(days=7)).isoformat()},
                                   "stored_refused": []}}


def test_an_untrusted_clock_does_not_judge_expiry(tmp_path: Path) -> None:
    """A unit whose clock ran years ahead (untrusted by time sync) still takes the agency's
    current list; with a trusted clock the same document is refused as expired."""
    ahead = FakeClock(T0 + timedelta(days=3 * 365))
    s = HotlistSettings(path=str(tmp_path / "hl"), agency_public_key=PUB_B64,
                        names=("stolen",))
    trusted = HotlistUpdater(s, None, KEY, ahead, clock_trusted=lambda: True)
    with pytest.raises(HotlistExpiredError):
        trusted.accept(doc(1))
    untrusted = HotlistUpdater(s, None, KEY, ahead, clock_trusted=lambda: False)
    assert untrusted.accept(doc(2)).version == 2
    with pytest.raises(HotlistRollbackError):  # the held version still holds
        untrusted.accept(doc(1))
