"""Signed hotlists: verify, version, apply deltas, keep encrypted at rest, poll, judge freshness.

The agency signs each hotlist document with its Ed25519 key. Vigil holds only the public key
(config ``hotlists.agency_public_key``) and uses a list only after:

1. the signature over the raw bytes verifies, before anything is parsed
   (:func:`firmware.link.hotlist_doc.verify_signed`);
2. the header is well formed and the list has not expired; each entry passes the charset and
   length rules (a row that does not is refused, counted and logged, never matched);
3. its version is newer than the one held and not below the version floor the store keeps
   (:class:`HotlistRollbackError`), and a delta's ``base_version`` is exactly the version held
   (:class:`HotlistDeltaError`).

An accepted list becomes a compact encrypted index file (:mod:`firmware.link.hotlist_index`)
matched from disk; at start each index is opened and every block checked, and one that fails
(or is older than the floor) is an error in `vigil status` and a health warning. A list past
its ``expires_at``, or issued longer ago than ``stale_after_s``, raises a health warning and an
audited alarm (:func:`freshness`), and every poll tells the agency the unit's view of its lists.
Format and signing: docs/hotlists.md.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from drivers.clock import Clock
from drivers.config_keys import setting
from firmware.link.hotlist_build import build_document, build_in_child
from firmware.link.hotlist_doc import (
    ENVELOPE_FORMAT,
    PAYLOAD_FORMAT,
    HotlistFormatError,
    HotlistSignatureError,
    HotlistUpdateError,
    SignedDocument,
    key_id,
    sign_hotlist,
    verify_signed,
)
from firmware.link.hotlist_index import (
    BlockIndex,
    CompactMatcher,
    HotlistStorageError,
    IndexMeta,
)
from firmware.public_keys import PublicKeyError, load_ed25519_public_key
from firmware.uplink.transport import Transport, TransportError
from inference.hotlist_matcher import ConfusionTable, HotlistError, HotlistMatcher, MatcherSettings

log = logging.getLogger(__name__)

__all__ = [
    "ENVELOPE_FORMAT", "PAYLOAD_FORMAT", "HotlistDeltaError", "HotlistExpiredError",
    "HotlistFormatError", "HotlistRollbackError", "HotlistSettings", "HotlistSignatureError",
    "HotlistStatus", "HotlistStorageError", "HotlistUpdateError", "HotlistUpdater",
    "freshness", "key_id", "load_public_key", "sign_hotlist", "verify_signed",
]


class HotlistRollbackError(HotlistUpdateError, ValueError):
    """Not newer than the list already held or the version floor: a replay or a rollback."""


class HotlistDeltaError(HotlistUpdateError, ValueError):
    """A delta for a version other than the one held (a full list is needed)."""


class HotlistExpiredError(HotlistUpdateError, ValueError):
    """Past its ``expires_at``, or issued before the list already held."""


@dataclass(frozen=True)
class HotlistSettings:
    """Config section ``[hotlists]``."""

    path: str = setting("", doc="Directory of the encrypted list indexes; empty = "
                        "<state_dir>/hotlists.")
    agency_public_key: str = setting("", doc="The agency's Ed25519 key (base64 of the raw 32 "
                                     "bytes, or a file). Empty = no hotlist matching.")
    names: tuple[str, ...] = setting((), doc="Lists to poll and match.")
    poll_interval_s: float = setting(300.0, min=30.0, max=86400.0)
    max_bytes: int = setting(268435456, min=1048576, max=1073741824,
                             doc="Largest list accepted (decompressed).")
    max_chain: int = setting(50, min=1, max=1000,
                             doc="Deltas applied before asking for a full list.")
    stale_after_s: float = setting(172800.0, min=3600.0, max=2592000.0,
                                   doc="A list issued longer ago than this is stale: health "
                                   "warning and audited alarm.")
    fuzzy: bool = setting(True, doc="OCR-confusion and partial-read rules.")
    max_unknown: int = setting(2, min=0, max=3, doc="'?' allowed in a read.")
    min_known: int = setting(4, min=1, max=10,
                             doc="Known characters required for a partial match.")


class VersionFloors(Protocol):
    """Where the anti-rollback floor lives (``storage.Store.version_floors()``)."""

    def get(self, name: str) -> int: ...

    def raise_to(self, name: str, version: int) -> int: ...


class MemoryFloors:
    """Floors in memory: for tools and tests without a store (a restart forgets them)."""

    def __init__(self) -> None:
        self._floors: dict[str, int] = {}

    def get(self, name: str) -> int:
        return self._floors.get(name, 0)

    def raise_to(self, name: str, version: int) -> int:
        self._floors[name] = max(version, self._floors.get(name, 0))
        return self._floors[name]


# -- keys ------------------------------------------------------------------------------------


def load_public_key(value: str) -> Ed25519PublicKey:
    """The agency's key as the config writes it (:mod:`firmware.public_keys`)."""
    if not value:
        raise HotlistSignatureError("hotlists.agency_public_key is not set")
    try:
        return load_ed25519_public_key(value)
    except PublicKeyError as e:
        raise HotlistSignatureError(f"agency public key unreadable: {e}") from e


# -- freshness (pure) ------------------------------------------------------------------------


def freshness(meta: IndexMeta | None, now: datetime, stale_after_s: float) -> str:
    """``"fresh"``, ``"stale"`` (issued more than ``stale_after_s`` ago: the unit has not
    heard from the agency), ``"expired"`` (past ``expires_at``) or ``"none"`` (no list)."""
    if meta is None:
        return "none"
    if now >= meta.expires_at:
        return "expired"
    if now - meta.issued_at > timedelta(seconds=stale_after_s):
        return "stale"
    return "fresh"


def check_document(doc: SignedDocument, held: IndexMeta | None, floor: int,
                   now: datetime | None) -> None:
    """Refuse an expired, older-issued, rolled-back or out-of-step document. Pure. ``now`` is
    None while the clock is not trusted: expiry is then not judged (a wrong clock must not
    refuse every list), the other checks do not need the time."""
    if now is not None and now >= doc.expires_at:
        raise HotlistExpiredError(
            f"{doc.name} v{doc.version} expired at {doc.expires_at.isoformat()}")
    if held is not None and doc.issued_at < held.issued_at:
        raise HotlistExpiredError(
            f"{doc.name} v{doc.version} issued {doc.issued_at.isoformat()}, before the list "
            f"held (issued {held.issued_at.isoformat()})")
    if doc.version < floor:
        raise HotlistRollbackError(
            f"{doc.name}: version {doc.version} is below the floor {floor}")
    if held is not None and doc.version < held.version:
        raise HotlistRollbackError(
            f"{doc.name}: version {doc.version} is not newer than {held.version}")
    if doc.kind == "delta" and (held is None or doc.base_version != held.version):
        have = None if held is None else held.version
        raise HotlistDeltaError(f"{doc.name}: delta from {doc.base_version} but holding {have}")
    if held is not None and doc.version == held.version and doc.kind == "delta":
        raise HotlistRollbackError(f"{doc.name}: version {doc.version} is not newer")


@dataclass(frozen=True)
class HotlistStatus:
    """The hotlists as `vigil status` shows them (``as_dict()`` is the JSON view)."""

    versions: Mapping[str, int]
    entries: int
    last_poll: datetime | None
    errors: Mapping[str, str]  # per list: the stored list refused at start, or the last poll's
    freshness: Mapping[str, str]  # per configured list: fresh, stale, expired or none
    expires_at: Mapping[str, str]
    refused_entries: Mapping[str, int]  # rows refused by the charset and length rules
    stored_refused: tuple[str, ...] = ()  # lists whose stored index failed its check at start

    def as_dict(self) -> dict[str, Any]:
        return {
            "versions": dict(self.versions),
            "entries": self.entries,
            "last_poll": self.last_poll.isoformat() if self.last_poll else None,
            "errors": dict(self.errors),
            "freshness": dict(self.freshness),
            "expires_at": dict(self.expires_at),
            "refused_entries": dict(self.refused_entries),
            "stored_refused": list(self.stored_refused),
        }

    def health_warnings(self) -> tuple[str, ...]:
        """What the daemon adds to its degraded reasons. A failed poll alone is not one (a link
        outage is the uplink's to report; it shows here as ``stale`` once it lasts)."""
        out = []
        if self.stored_refused:
            out.append("hotlist_error")
        if "stale" in self.freshness.values():
            out.append("hotlist_stale")
        if "expired" in self.freshness.values():
            out.append("hotlist_expired")
        return tuple(out)


class HotlistUpdater:
    """Holds the verified lists, polls the agency for newer ones, publishes a new matcher.

    ``on_update`` receives each new matcher (the pipeline swaps its reference); :attr:`matcher`
    is the current one. ``audit(action, reason, result, detail)`` records every accepted and
    refused document and each change of a list's freshness (wire it to ``store.audit``).
    ``floors`` keeps the anti-rollback floor (``store.version_floors()``); ``build_in_child``
    builds each index in a child process, so the daemon's RSS does not keep the build's memory;
    ``clock_trusted`` says whether the wall clock may judge a document's expiry.
    """

    def __init__(
        self,
        settings: HotlistSettings,
        transport: Transport | None,
        key: bytes,
        clock: Clock,
        on_update: Callable[[HotlistMatcher], None] | None = None,
        audit: Callable[[str, str, str, Mapping[str, Any]], Any] | None = None,
        floors: VersionFloors | None = None,
        build_in_child: bool = False,
        clock_trusted: Callable[[], bool] | None = None,
    ) -> None:
        if len(key) != 32:
            raise HotlistStorageError("hotlist key must be 32 bytes")
        self.settings = settings
        self._public_key = load_public_key(settings.agency_public_key)
        self._transport = transport
        self._key = key
        self._clock = clock
        self._on_update = on_update
        self._audit = audit
        self._floors: VersionFloors = floors if floors is not None else MemoryFloors()
        # The daemon builds indexes in a child process (firmware.link.hotlist_build).
        self._build_in_child = build_in_child
        self._clock_trusted = clock_trusted  # None: trusted (tools, tests)
        self._lock = threading.Lock()
        self._lists: dict[str, BlockIndex] = {}
        self._retired: list[BlockIndex] = []  # closed at the next swap, when no read uses them
        self._refused: dict[str, int] = {}
        self._fresh: dict[str, str] = {}  # as last audited
        self._matcher_settings = MatcherSettings(
            fuzzy=settings.fuzzy, max_unknown=settings.max_unknown, min_known=settings.min_known
        )
        self._confusion = ConfusionTable(self._matcher_settings.confusion_classes)
        self.matcher: HotlistMatcher = CompactMatcher((), self._matcher_settings)
        self.last_poll: datetime | None = None
        self.last_errors: dict[str, str] = {}  # per list, cleared by a good poll
        self.load_errors: dict[str, str] = {}  # per list, cleared when a good list is accepted
        self._poll_now = threading.Event()

    def _path(self, name: str) -> Path:
        return Path(self.settings.path) / f"{name}.idx"

    def _record(self, action: str, reason: str, result: str, detail: Mapping[str, Any]) -> None:
        if self._audit is not None:
            try:
                self._audit(action, reason, result, detail)
            except Exception:
                log.exception("hotlist audit failed")

    def _refuse_stored(self, name: str, why: str) -> None:
        self.load_errors[name] = why
        log.error("stored hotlist refused: %s", why, extra={"hotlist": name})
        self._record("hotlist.load", why, "refused", {"name": name})

    def load(self) -> HotlistMatcher:
        """Open the stored indexes, checking every block (works offline). One that fails, or
        is older than the floor, is refused, shown in status and fetched again in full."""
        for name in self.settings.names:
            legacy = Path(self.settings.path) / f"{name}.vhl"
            if legacy.exists():
                # The /1 format's chain file: not readable by this version, refetched in full.
                legacy.unlink()
                log.info("old-format hotlist file removed", extra={"hotlist": name})
            path = self._path(name)
            if not path.exists():
                continue
            try:
                ix = BlockIndex(path, self._key, name)
            except (HotlistStorageError, OSError, ValueError, KeyError) as e:
                self._refuse_stored(name, f"{path.name}: {e}")
                continue
            try:
                ix.check_all()
                floor = self._floors.get(name)
                if ix.version < floor:
                    raise HotlistRollbackError(
                        f"stored version {ix.version} is below the floor {floor}")
                self._floors.raise_to(name, ix.version)
            except Exception as e:  # noqa: BLE001 - any failure refuses the stored list
                ix.close()
                self._refuse_stored(name, f"{path.name}: {e}")
                continue
            with self._lock:
                self._lists[name] = ix
                self._refused[name] = ix.meta.refused
        m = self._rebuild()
        self.check_freshness()
        return m

    def _rebuild(self) -> HotlistMatcher:
        with self._lock:
            lists = [self._lists[n] for n in self.settings.names if n in self._lists]
            old, self._retired = self._retired, []
        m = CompactMatcher(lists, self._matcher_settings)
        self.matcher = m
        if self._on_update is not None:
            self._on_update(m)
        for ix in old:
            ix.close()
        return m

    def versions(self) -> dict[str, int]:
        with self._lock:
            return {n: ix.version for n, ix in self._lists.items()}

    def accept(self, blob: bytes) -> IndexMeta:
        """Verify and apply one document (from the network or a USB stick); persist it."""
        doc = verify_signed(blob, self._public_key, self.settings.max_bytes)
        if doc.name not in self.settings.names:
            raise HotlistFormatError(f"hotlist {doc.name!r} is not configured")
        with self._lock:
            held = self._lists.get(doc.name)
        meta = held.meta if held is not None else None
        trusted = self._clock_trusted is None or self._clock_trusted()
        if not trusted:
            log.warning("clock not trusted: hotlist expiry not judged", extra={
                "hotlist": doc.name, "expires_at": doc.expires_at.isoformat()})
        check_document(doc, meta, self._floors.get(doc.name),
                       self._clock.utcnow() if trusted else None)
        final = self._path(doc.name)
        tmp = final.with_name(f".{final.name}.new")
        deltas = 0 if doc.kind == "full" or meta is None else meta.deltas + 1
        held_path = held.path if held is not None and doc.kind == "delta" else None
        try:
            if self._build_in_child:  # the child verifies and parses its own copy
                built, stats = build_in_child(blob, self._public_key, tmp, self._key, held_path,
                                              deltas, self._confusion, self.settings.max_bytes)
            else:
                built, stats = build_document(doc, tmp, self._key, held_path, deltas,
                                              self._confusion, self.settings.max_bytes)
            if meta is not None and doc.version == meta.version and built.digest != meta.digest:
                raise HotlistRollbackError(
                    f"{doc.name}: version {doc.version} again, with other entries")
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        ix = BlockIndex(final, self._key, doc.name)
        self._floors.raise_to(doc.name, doc.version)
        with self._lock:
            if held is not None:
                self._retired.append(held)
            self._lists[doc.name] = ix
            self._refused[doc.name] = stats.refused
        self.load_errors.pop(doc.name, None)
        if stats.refused:
            log.warning("hotlist entries refused", extra={
                "hotlist": doc.name, "version": doc.version, "refused": stats.refused,
                "by_rule": dict(stats.by_rule), "examples": list(stats.examples)})
        log.info("hotlist %s now version %d", doc.name, doc.version, extra={
            "hotlist": doc.name, "version": doc.version, "kind": doc.kind,
            "entries": built.entries, "refused": stats.refused})
        self._record("hotlist.update", doc.kind, "accepted", {
            "name": doc.name, "version": doc.version, "entries": built.entries,
            "refused_entries": stats.refused, "sha256": doc.sha256,
            "issued_at": doc.issued_at.isoformat(), "expires_at": doc.expires_at.isoformat()})
        return built

    def _fetch(self, name: str, params: dict[str, str]) -> bool:
        """One GET and its document; True if a list was accepted."""
        if self._transport is None:
            return False
        resp = self._transport.request("GET", f"/v1/hotlists/{name}", params=params)
        if resp.status == 204:
            self.last_errors.pop(name, None)
            return False
        if resp.status != 200:
            self.last_errors[name] = f"HTTP {resp.status}"
            log.warning("hotlist poll: HTTP %d", resp.status, extra={"hotlist": name})
            return False
        self.accept(resp.body)
        self.last_errors.pop(name, None)
        return True

    def step(self) -> float:
        """Poll every configured list once; returns seconds until the next poll."""
        if self._transport is None:
            self.check_freshness()
            return self.settings.poll_interval_s
        changed = False
        for name in self.settings.names:
            with self._lock:
                held = self._lists.get(name)
            # The unit's view of the list travels with every poll: the agency sees a unit
            # whose list went stale or expired, or was refused at start, as soon as it calls.
            params = {"freshness": self._fresh.get(name, "none")}
            if name in self.load_errors:
                params["stored"] = "refused"
            if held is not None and held.meta.deltas < self.settings.max_chain:
                params["since"] = str(held.version)
            try:
                changed |= self._fetch(name, params)
            except TransportError as e:
                self.last_errors[name] = str(e)
                log.warning("hotlist poll failed: %s", e, extra={"hotlist": name})
            except HotlistDeltaError as e:
                # Out of step: ask for the full list straight away.
                log.warning("%s; fetching the full list", e, extra={"hotlist": name})
                try:
                    changed |= self._fetch(name, {"freshness": params["freshness"]})
                except (TransportError, HotlistUpdateError) as e2:
                    self.last_errors[name] = str(e2)
                    self._record("hotlist.update", str(e2), "refused", {"name": name})
            except HotlistUpdateError as e:
                self.last_errors[name] = str(e)
                log.error("hotlist refused: %s", e, extra={"hotlist": name})
                self._record("hotlist.update", str(e), "refused", {"name": name})
        self.last_poll = self._clock.utcnow()
        if changed:
            self._rebuild()
        self.check_freshness()
        return self.settings.poll_interval_s

    def check_freshness(self) -> dict[str, str]:
        """Each list's freshness now; a change is logged and audited once (the alarm)."""
        now = self._clock.utcnow()
        with self._lock:
            metas = {n: self._lists[n].meta if n in self._lists else None
                     for n in self.settings.names}
        states = {n: freshness(m, now, self.settings.stale_after_s) for n, m in metas.items()}
        for name, state in states.items():
            before = self._fresh.get(name)
            if state == before:
                continue
            self._fresh[name] = state
            if before is None and state in ("fresh", "none"):
                continue
            m = metas[name]
            detail = {"name": name, "state": state, "was": before,
                      "issued_at": m.issued_at.isoformat() if m else None,
                      "expires_at": m.expires_at.isoformat() if m else None}
            (log.warning if state in ("stale", "expired") else log.info)(
                "hotlist freshness changed", extra={"hotlist": name, "freshness": state,
                                                    "was": before})
            self._record("hotlist.freshness", f"list {state}",
                         "alarm" if state in ("stale", "expired") else "cleared", detail)
        return states

    def poll_now(self) -> None:
        """Poll before the interval is up (an MQTT nudge: the agency published a new list).
        What is fetched is verified exactly as a scheduled poll's."""
        self._poll_now.set()

    def run(self, stop_event: threading.Event) -> None:
        while not stop_event.is_set():
            try:
                delay = self.step()
            except (OSError, HotlistError) as e:
                log.exception("hotlist update step failed: %s", e)
                delay = self.settings.poll_interval_s
            deadline = self._clock.monotonic() + delay
            while not stop_event.is_set() and self._clock.monotonic() < deadline:
                if self._poll_now.wait(min(0.2, deadline - self._clock.monotonic())):
                    break
            self._poll_now.clear()

    def status(self) -> HotlistStatus:
        with self._lock:
            expires = {n: ix.meta.expires_at.isoformat() for n, ix in self._lists.items()}
            refused = dict(self._refused)
        states = self.check_freshness()
        return HotlistStatus(self.versions(), len(self.matcher), self.last_poll,
                             {**self.load_errors, **self.last_errors}, states, expires, refused,
                             tuple(sorted(self.load_errors)))

    def close(self) -> None:
        with self._lock:
            held = list(self._lists.values()) + self._retired
            self._lists, self._retired = {}, []
        for ix in held:
            ix.close()
