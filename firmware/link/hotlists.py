"""Signed hotlists: verify, version, apply deltas, keep encrypted at rest, poll for updates.

The agency signs each hotlist document with its Ed25519 key. Vigil holds only the public key
(config ``hotlists.agency_public_key``) and uses a list only after:

1. the signature over the exact payload bytes verifies (:func:`verify_signed`);
2. the document is well formed (:class:`HotlistFormatError` otherwise: a truncated delta fails
   here or at step 1);
3. its version is newer than the one held (:class:`HotlistRollbackError`), and a delta's
   ``base_version`` is exactly the version held (:class:`HotlistDeltaError`).

Steps 1-3 are pure (:func:`verify_signed`, :func:`apply_document`): bytes in, a
:class:`inference.hotlist_matcher.Hotlist` or an error out. The verified *signed blobs* (the
last full list plus the deltas since) are what is stored, AES-256-GCM encrypted with a key
derived from the store (``store.derive_key("hotlist")``) and written atomically
(:func:`drivers.files.write_atomic`); on start they are decrypted and verified again, so a
file swapped on the SD card is refused twice over. Format and signing: docs/hotlists.md.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
import os
import threading
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from drivers import files
from drivers.clock import Clock
from drivers.config_keys import setting
from firmware.errors import FirmwareError
from firmware.uplink.transport import Transport, TransportError
from inference.hotlist_matcher import (
    EntryTable,
    Hotlist,
    HotlistEntry,
    HotlistError,
    HotlistMatcher,
    MatcherSettings,
    normalise_plate,
)

log = logging.getLogger(__name__)

ENVELOPE_FORMAT = "vigil-hotlist-signed/1"
PAYLOAD_FORMAT = "vigil-hotlist/1"
_FILE_MAGIC = b"VHL1"


class HotlistUpdateError(FirmwareError):
    """Root of hotlist loading errors. Subclasses say whose fault it is."""


class HotlistSignatureError(HotlistUpdateError, ValueError):
    """Unsigned, wrongly signed, or signed by another key."""


class HotlistFormatError(HotlistUpdateError, ValueError):
    """Not a hotlist document (truncated, bad JSON, missing or mistyped fields)."""


class HotlistRollbackError(HotlistUpdateError, ValueError):
    """Not newer than the list already held: a replay or a rollback."""


class HotlistDeltaError(HotlistUpdateError, ValueError):
    """A delta for a version other than the one held (a full list is needed)."""


class HotlistStorageError(HotlistUpdateError, OSError):
    """The encrypted file cannot be read back (wrong key, tampered, truncated)."""


@dataclass(frozen=True)
class HotlistSettings:
    """Config section ``[hotlists]``."""

    path: str = setting("", doc="Directory of the encrypted lists; empty = "
                        "<state_dir>/hotlists.")
    agency_public_key: str = setting("", doc="The agency's Ed25519 key (base64 of the raw 32 "
                                     "bytes, or a file). Empty = no hotlist matching.")
    names: tuple[str, ...] = setting((), doc="Lists to poll and match.")
    poll_interval_s: float = setting(300.0, min=30.0, max=86400.0)
    max_bytes: int = setting(268435456, min=1048576, max=1073741824,
                             doc="Largest list accepted (decompressed).")
    max_chain: int = setting(50, min=1, max=1000, doc="Deltas kept before a full list.")
    fuzzy: bool = setting(True, doc="OCR-confusion and partial-read rules.")
    max_unknown: int = setting(2, min=0, max=3, doc="'?' allowed in a read.")
    min_known: int = setting(4, min=1, max=10,
                             doc="Known characters required for a partial match.")


@dataclass(frozen=True)
class HotlistDocument:
    """A verified, parsed payload."""

    name: str
    version: int
    kind: str  # "full" | "delta"
    base_version: int | None
    issued_at: str
    entries: EntryTable
    remove: tuple[str, ...]


# -- keys ------------------------------------------------------------------------------------


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(value: str) -> Ed25519PublicKey:
    """From base64 of the raw 32 bytes, or a file holding PEM, raw bytes or base64."""
    if not value:
        raise HotlistSignatureError("hotlists.agency_public_key is not set")
    data: bytes
    p = Path(value)
    data = p.read_bytes() if len(value) < 4096 and p.is_file() else value.encode()
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
            if not isinstance(key, Ed25519PublicKey):
                raise HotlistSignatureError("agency public key is not an Ed25519 key")
            return key
        if len(data) == 32:
            return Ed25519PublicKey.from_public_bytes(data)
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(data.strip(), validate=True))
    except HotlistSignatureError:
        raise
    except ValueError as e:
        raise HotlistSignatureError(f"agency public key unreadable: {e}") from e


# -- signing (agency side; used by tests and the reference service) --------------------------


def sign_hotlist(
    private_key: Ed25519PrivateKey,
    name: str,
    version: int,
    entries: Iterable[HotlistEntry],
    *,
    kind: str = "full",
    base_version: int | None = None,
    remove: Iterable[str] = (),
    issued_at: datetime | None = None,
) -> bytes:
    """Build and sign a hotlist document; what the agency publishes."""
    reasons: dict[str, int] = {}
    rows: list[list[Any]] = []
    for e in entries:
        idx = reasons.setdefault(e.reason, len(reasons))
        row: list[Any] = [e.plate, idx, e.priority]
        if e.entry_id is not None or e.region is not None:
            row += [e.entry_id, e.region]
        rows.append(row)
    doc: dict[str, Any] = {
        "format": PAYLOAD_FORMAT,
        "name": name,
        "version": version,
        "kind": kind,
        "issued_at": (issued_at or datetime.now(UTC)).isoformat(),
        "reasons": list(reasons),
        "entries": rows,
    }
    if kind == "delta":
        doc["base_version"] = base_version
        doc["remove"] = list(remove)
    payload = json.dumps(doc, separators=(",", ":")).encode()
    envelope = {
        "format": ENVELOPE_FORMAT,
        "key_id": key_id(private_key.public_key()),
        "signature": base64.b64encode(private_key.sign(payload)).decode(),
        "payload": base64.b64encode(payload).decode(),
    }
    return json.dumps(envelope).encode()


# -- verification (pure) -----------------------------------------------------------------------


def _decompress(blob: bytes, max_bytes: int) -> bytes:
    if blob[:2] != b"\x1f\x8b":
        if len(blob) > max_bytes:
            raise HotlistFormatError("hotlist document too large")
        return blob
    import zlib

    d = zlib.decompressobj(wbits=31)
    try:
        out = d.decompress(blob, max_bytes + 1)
    except zlib.error as e:
        raise HotlistFormatError(f"corrupt gzip: {e}") from e
    if len(out) > max_bytes:
        raise HotlistFormatError("hotlist document too large once decompressed")
    if not d.eof:
        raise HotlistFormatError("truncated gzip stream")
    return out


def verify_signed(
    blob: bytes, public_key: Ed25519PublicKey, max_bytes: int = 256 * 1024 * 1024
) -> HotlistDocument:
    """Check the signature over the payload bytes, then parse. No I/O."""
    raw = _decompress(blob, max_bytes)
    try:
        env = json.loads(raw)
    except ValueError as e:
        raise HotlistFormatError(f"not a signed hotlist (truncated?): {e}") from e
    if not isinstance(env, dict) or env.get("format") != ENVELOPE_FORMAT:
        raise HotlistSignatureError("not a signed hotlist envelope")
    sig_b64, payload_b64 = env.get("signature"), env.get("payload")
    if not isinstance(sig_b64, str) or not sig_b64:
        raise HotlistSignatureError("hotlist is not signed")
    if not isinstance(payload_b64, str):
        raise HotlistFormatError("envelope has no payload")
    try:
        sig = base64.b64decode(sig_b64, validate=True)
        payload = base64.b64decode(payload_b64, validate=True)
    except ValueError as e:
        raise HotlistFormatError(f"bad base64 in envelope: {e}") from e
    try:
        public_key.verify(sig, payload)
    except InvalidSignature as e:
        raise HotlistSignatureError(
            f"signature does not verify with key {key_id(public_key)}"
        ) from e
    return _parse_payload(payload)


def _parse_payload(payload: bytes) -> HotlistDocument:
    try:
        d = json.loads(payload)
        if d["format"] != PAYLOAD_FORMAT:
            raise HotlistFormatError(f"unknown payload format {d['format']!r}")
        name, version, kind = d["name"], d["version"], d["kind"]
        if not isinstance(name, str) or not name or not name.replace("-", "").replace(
            "_", ""
        ).isalnum():
            raise HotlistFormatError(f"bad hotlist name {name!r}")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise HotlistFormatError("version must be a positive integer")
        if kind not in ("full", "delta"):
            raise HotlistFormatError(f"kind must be full or delta, not {kind!r}")
        entries = _table_from_rows(d["reasons"], d["entries"])
        base = d.get("base_version")
        remove: tuple[str, ...] = ()
        if kind == "delta":
            if not isinstance(base, int) or isinstance(base, bool) or not 0 <= base < version:
                raise HotlistFormatError("a delta needs base_version below its version")
            remove = tuple(str(x) for x in d["remove"])
        return HotlistDocument(
            name, version, kind, base if kind == "delta" else None, str(d["issued_at"]),
            entries, remove,
        )
    except HotlistFormatError:
        raise
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise HotlistFormatError(f"malformed hotlist payload: {type(e).__name__}: {e}") from e


def _table_from_rows(reasons: Any, rows: Any) -> EntryTable:
    """Rows ``[plate, reason_index, priority(, id, region)]`` straight into columns: no object
    per entry, so a million-entry list loads in seconds and ~100 MB."""
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise HotlistFormatError("reasons must be a list of strings")
    if not isinstance(rows, list):
        raise HotlistFormatError("entries must be a list")
    n_reasons = len(reasons)
    plates: list[str] = []
    ridx = array("I")
    prio = array("h")
    ids: list[str | None] = []
    regions: list[str | None] = []
    extra = False
    for row in rows:
        plate = row[0]
        if not isinstance(plate, str) or not plate or normalise_plate(plate) != plate:
            raise HotlistFormatError(f"plate {plate!r} is not normalised")
        r, p = row[1], row[2]
        if not isinstance(r, int) or not 0 <= r < n_reasons:
            raise HotlistFormatError(f"plate {plate}: reason index {r!r} out of range")
        if not isinstance(p, int) or isinstance(p, bool) or not -32768 <= p <= 32767:
            raise HotlistFormatError(f"plate {plate}: bad priority {p!r}")
        plates.append(plate)
        ridx.append(r)
        prio.append(p)
        if len(row) > 3:
            extra = True
            ids.append(None if row[3] is None else str(row[3]))
            regions.append(None if len(row) < 5 or row[4] is None else str(row[4]))
        else:
            ids.append(None)
            regions.append(None)
    table = EntryTable(plates, tuple(reasons), ridx, prio, ids if extra else None,
                       regions if extra else None)
    if len(set(plates)) != len(plates):
        table = EntryTable.build(table)  # the agency listed a plate twice: last one wins
    return table


def apply_document(current: Hotlist | None, doc: HotlistDocument) -> Hotlist:
    """The list after ``doc``; refuses rollbacks, replays and deltas for another base."""
    if current is not None:
        if doc.name != current.name:
            raise HotlistFormatError(f"document for {doc.name!r}, not {current.name!r}")
        if doc.version <= current.version:
            raise HotlistRollbackError(
                f"{doc.name}: version {doc.version} is not newer than {current.version}"
            )
    if doc.kind == "full":
        return Hotlist(doc.name, doc.version, doc.entries)
    if current is None or doc.base_version != current.version:
        have = None if current is None else current.version
        raise HotlistDeltaError(
            f"{doc.name}: delta from {doc.base_version} but holding {have}"
        )
    # An entry in the delta replaces the held one for that plate (new reason or priority).
    return Hotlist(doc.name, doc.version, current.entries.merged(set(doc.remove), doc.entries))


# -- encrypted at rest ------------------------------------------------------------------------


class HotlistFile:
    """One hotlist's signed chain (full + deltas), AES-GCM encrypted, atomically replaced."""

    def __init__(self, directory: Path, name: str, key: bytes) -> None:
        if len(key) != 32:
            raise HotlistStorageError("hotlist key must be 32 bytes")
        self.path = Path(directory) / f"{name}.vhl"
        self.name = name
        self._aead = AESGCM(key)

    def save(self, chain: Sequence[bytes]) -> None:
        plain = json.dumps([base64.b64encode(b).decode() for b in chain]).encode()
        plain = gzip.compress(plain, mtime=0)
        nonce = os.urandom(12)
        sealed = _FILE_MAGIC + nonce + self._aead.encrypt(nonce, plain, self.name.encode())
        files.write_atomic(self.path, sealed, 0o644)

    def load(self) -> list[bytes] | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        if not data.startswith(_FILE_MAGIC) or len(data) < 4 + 12 + 16:
            raise HotlistStorageError(f"{self.path}: not a hotlist file")
        try:
            plain = self._aead.decrypt(data[4:16], data[16:], self.name.encode())
            return [base64.b64decode(b) for b in json.loads(gzip.decompress(plain))]
        except (InvalidTag, ValueError, OSError) as e:
            raise HotlistStorageError(f"{self.path}: cannot decrypt (tampered or wrong key)") from e


# -- the updater ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HotlistStatus:
    """The hotlists as `vigil status` shows them (``as_dict()`` is the JSON view)."""

    versions: Mapping[str, int]
    entries: int
    last_poll: datetime | None
    errors: Mapping[str, str]  # per list, the last poll's error

    def as_dict(self) -> dict[str, Any]:
        return {
            "versions": dict(self.versions),
            "entries": self.entries,
            "last_poll": self.last_poll.isoformat() if self.last_poll else None,
            "errors": dict(self.errors),
        }


class HotlistUpdater:
    """Holds the verified lists, polls the agency for newer ones, publishes a new matcher.

    ``on_update`` receives each new :class:`HotlistMatcher` (the pipeline swaps its reference);
    :attr:`matcher` is the current one. ``audit(action, reason, result, detail)`` records every
    accepted and refused document (wire it to ``store.audit``).
    """

    def __init__(
        self,
        settings: HotlistSettings,
        transport: Transport | None,
        key: bytes,
        clock: Clock,
        on_update: Callable[[HotlistMatcher], None] | None = None,
        audit: Callable[[str, str, str, Mapping[str, Any]], Any] | None = None,
    ) -> None:
        self.settings = settings
        self._public_key = load_public_key(settings.agency_public_key)
        self._transport = transport
        self._key = key
        self._clock = clock
        self._on_update = on_update
        self._audit = audit
        self._lock = threading.Lock()
        self._lists: dict[str, Hotlist] = {}
        self._chains: dict[str, list[bytes]] = {}
        self._matcher_settings = MatcherSettings(
            fuzzy=settings.fuzzy, max_unknown=settings.max_unknown, min_known=settings.min_known
        )
        self.matcher = HotlistMatcher((), self._matcher_settings)
        self.last_poll: datetime | None = None
        self.last_errors: dict[str, str] = {}  # per list, cleared by a good poll

    def _file(self, name: str) -> HotlistFile:
        return HotlistFile(Path(self.settings.path), name, self._key)

    def _record(self, action: str, reason: str, result: str, detail: Mapping[str, Any]) -> None:
        if self._audit is not None:
            try:
                self._audit(action, reason, result, detail)
            except Exception:
                log.exception("hotlist audit failed")

    def load(self) -> HotlistMatcher:
        """Read and re-verify the stored lists (works offline). Unreadable files are refused
        and logged; the list is fetched again in full at the next poll."""
        for name in self.settings.names:
            try:
                chain = self._file(name).load()
                if chain is None:
                    continue
                hl: Hotlist | None = None
                for blob in chain:
                    doc = verify_signed(blob, self._public_key, self.settings.max_bytes)
                    hl = apply_document(hl, doc)
                if hl is not None and hl.name == name:
                    with self._lock:
                        self._lists[name], self._chains[name] = hl, list(chain)
            except HotlistUpdateError as e:
                log.error("stored hotlist refused: %s", e, extra={"hotlist": name})
                self._record("hotlist.load", str(e), "refused", {"name": name})
        return self._rebuild()

    def _rebuild(self) -> HotlistMatcher:
        with self._lock:
            lists = [self._lists[n] for n in self.settings.names if n in self._lists]
        m = HotlistMatcher(lists, self._matcher_settings)
        self.matcher = m
        if self._on_update is not None:
            self._on_update(m)
        return m

    def versions(self) -> dict[str, int]:
        with self._lock:
            return {n: h.version for n, h in self._lists.items()}

    def accept(self, blob: bytes) -> Hotlist:
        """Verify and apply one document (from the network or a USB stick); persist it."""
        doc = verify_signed(blob, self._public_key, self.settings.max_bytes)
        if doc.name not in self.settings.names:
            raise HotlistFormatError(f"hotlist {doc.name!r} is not configured")
        with self._lock:
            cur = self._lists.get(doc.name)
            chain = self._chains.get(doc.name, [])
        if (
            cur is not None and doc.kind == "full" and doc.version == cur.version
            and set(doc.entries) == set(cur.entries)
        ):
            # The full list at the version our deltas reached: keep it instead of the chain.
            self._file(doc.name).save([blob])
            with self._lock:
                self._chains[doc.name] = [blob]
            return cur
        new = apply_document(cur, doc)
        chain = [blob] if doc.kind == "full" else [*chain, blob]
        self._file(doc.name).save(chain)
        with self._lock:
            self._lists[doc.name], self._chains[doc.name] = new, chain
        log.info(
            "hotlist %s now version %d", doc.name, new.version,
            extra={"hotlist": doc.name, "version": new.version, "kind": doc.kind,
                   "entries": len(new.entries)},
        )
        self._record("hotlist.update", doc.kind, "accepted",
                     {"name": doc.name, "version": new.version, "entries": len(new.entries)})
        return new

    def step(self) -> float:
        """Poll every configured list once; returns seconds until the next poll."""
        if self._transport is None:
            return self.settings.poll_interval_s
        changed = False
        for name in self.settings.names:
            with self._lock:
                cur = self._lists.get(name)
                chain_len = len(self._chains.get(name, ()))
            params = {}
            if cur is not None and chain_len <= self.settings.max_chain:
                params["since"] = str(cur.version)
            try:
                resp = self._transport.request("GET", f"/v1/hotlists/{name}", params=params)
            except TransportError as e:
                self.last_errors[name] = str(e)
                log.warning("hotlist poll failed: %s", e, extra={"hotlist": name})
                continue
            if resp.status == 204:
                self.last_errors.pop(name, None)
                continue
            if resp.status != 200:
                self.last_errors[name] = f"HTTP {resp.status}"
                log.warning("hotlist poll: HTTP %d", resp.status, extra={"hotlist": name})
                continue
            try:
                self.accept(resp.body)
                self.last_errors.pop(name, None)
                changed = True
            except HotlistDeltaError as e:
                # Out of step: ask for the full list straight away.
                log.warning("%s; fetching the full list", e, extra={"hotlist": name})
                try:
                    full = self._transport.request("GET", f"/v1/hotlists/{name}")
                    if full.status == 200:
                        self.accept(full.body)
                        changed = True
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
        return self.settings.poll_interval_s

    def run(self, stop_event: threading.Event) -> None:
        while not stop_event.is_set():
            try:
                delay = self.step()
            except (OSError, HotlistError) as e:
                log.exception("hotlist update step failed: %s", e)
                delay = self.settings.poll_interval_s
            stop_event.wait(delay)

    def status(self) -> HotlistStatus:
        return HotlistStatus(self.versions(), len(self.matcher), self.last_poll,
                             dict(self.last_errors))
