"""The signed hotlist document (``vigil-hotlist-signed/2``): signing, verifying, streamed parsing.

Pure: bytes in, records or an error out (no I/O, no clock). Format: docs/hotlists.md.

The signature covers the raw bytes as sent: one header line, then the body (gzip or plain)::

    vigil-hotlist-signed/2 <key_id> <base64 Ed25519 signature>\\n<body>

The Ed25519 signature is over ``SIGNED_PREFIX + SHA-512(body)``, so :func:`verify_signed` hashes
the body in place (no copy, nothing parsed) and checks the signature before any byte of it is
decompressed or parsed. The body is a text document: one JSON header line (name, version,
times, reasons, removals), then one tab-separated row per entry. :func:`iter_rows` decompresses
it in bounded chunks and yields the rows one at a time, so a 256 MiB list is never held twice.

Every field from outside is restricted (16.5 of the security review): plates ``A-Z0-9``,
reasons printable text, ids printable ASCII, regions ``A-Za-z0-9-``, each with a length bound.
A row that breaks a rule is *refused* (counted in :class:`ParseStats`, never carried into an
alert or the uplink); a malformed header refuses the whole document.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firmware.errors import FirmwareError

ENVELOPE_FORMAT = "vigil-hotlist-signed/2"
PAYLOAD_FORMAT = "vigil-hotlist/2"
SIGNED_PREFIX = b"vigil-hotlist-signed/2\x00"
MAX_HEADER_LINE = 256  # the envelope line: format, key id, base64 signature
MAX_PAYLOAD_HEADER = 16 * 1024 * 1024  # the JSON line (reasons, removals of a delta)
MAX_ROW_BYTES = 512
PLATE_MAX = 16
REASON_MAX = 200
ID_MAX = 64
REGION_MAX = 16
MAX_REASONS = 65535
_PLATE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_REGION_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
_CHUNK = 1 << 20


class HotlistUpdateError(FirmwareError):
    """Root of hotlist loading errors. Subclasses say whose fault it is."""


class HotlistSignatureError(HotlistUpdateError, ValueError):
    """Unsigned, wrongly signed, or signed by another key."""


class HotlistFormatError(HotlistUpdateError, ValueError):
    """Not a hotlist document (truncated, bad header, missing or mistyped fields)."""


@dataclass(frozen=True)
class Row:
    """One entry as the agency listed it, after the charset and length checks."""

    plate: str
    reason: str
    priority: int
    entry_id: str | None = None
    region: str | None = None


@dataclass
class ParseStats:
    """Rows refused while parsing, by rule; ``examples`` keeps the first few, made printable."""

    refused: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def refuse(self, rule: str, raw: bytes) -> None:
        self.refused += 1
        self.by_rule[rule] = self.by_rule.get(rule, 0) + 1
        if len(self.examples) < 5:
            self.examples.append(ascii(raw[:40]))


@dataclass(frozen=True)
class SignedDocument:
    """A document whose signature verified; the body is not parsed beyond its header line."""

    name: str
    version: int
    kind: str  # "full" | "delta"
    base_version: int | None
    issued_at: datetime
    expires_at: datetime
    reasons: tuple[str | None, ...]  # None: a reason refused by the charset rules
    remove: tuple[str, ...]
    body: memoryview  # the signed body (gzip or plain), not copied
    sha256: str  # of the whole signed blob: what the audit records


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def clean_plate(text: str) -> str | None:
    return text if 0 < len(text) <= PLATE_MAX and set(text) <= _PLATE_CHARS else None


def clean_reason(text: str) -> str | None:
    return text if 0 < len(text) <= REASON_MAX and text.isprintable() else None


def clean_id(text: str) -> str | None:
    ok = 0 < len(text) <= ID_MAX and all(" " <= c <= "~" for c in text)
    return text if ok else None


def clean_region(text: str) -> str | None:
    return text if 0 < len(text) <= REGION_MAX and set(text) <= _REGION_CHARS else None


# -- signing (agency side; the reference for its tooling, used by tests and the ingest service) --


def sign_hotlist(
    private_key: Ed25519PrivateKey,
    name: str,
    version: int,
    entries: Iterable[Any],
    *,
    kind: str = "full",
    base_version: int | None = None,
    remove: Iterable[str] = (),
    issued_at: datetime | None = None,
    expires_at: datetime | None = None,
    compress: bool = False,
) -> bytes:
    """Build and sign a document; what the agency publishes. ``entries`` are
    ``HotlistEntry``/:class:`Row`-like (``plate``, ``reason``, ``priority``, ``entry_id``,
    ``region``). ``expires_at`` defaults to seven days after ``issued_at``. Fields are written
    as given (the agency's tooling validates); the device checks them."""
    issued = issued_at or datetime.now(UTC)
    reasons: dict[str, int] = {}
    lines: list[str] = []
    for e in entries:
        idx = reasons.setdefault(e.reason, len(reasons))
        cols = [e.plate, str(idx), str(e.priority)]
        if e.entry_id is not None or e.region is not None:
            cols += [e.entry_id or "", e.region or ""]
        lines.append("\t".join(cols))
    head: dict[str, Any] = {
        "format": PAYLOAD_FORMAT, "name": name, "version": version, "kind": kind,
        "issued_at": issued.isoformat(),
        "expires_at": (expires_at or issued + timedelta(days=7)).isoformat(),
        "reasons": list(reasons), "entries": len(lines),
    }
    if kind == "delta":
        head["base_version"] = base_version
        head["remove"] = list(remove)
    text = json.dumps(head, separators=(",", ":")) + "\n" + "".join(ln + "\n" for ln in lines)
    body = text.encode()
    if compress:
        import gzip

        body = gzip.compress(body, mtime=0)
    sig = private_key.sign(SIGNED_PREFIX + hashlib.sha512(body).digest())
    line = f"{ENVELOPE_FORMAT} {key_id(private_key.public_key())} {base64.b64encode(sig).decode()}"
    return line.encode() + b"\n" + body


# -- verification (pure) -------------------------------------------------------------------------


def verify_signed(
    blob: bytes, public_key: Ed25519PublicKey, max_bytes: int = 256 * 1024 * 1024
) -> SignedDocument:
    """Check the signature over the raw body, then read the header line. No I/O.

    Nothing of the body is parsed (or decompressed beyond its first line) before the signature
    verifies, and nothing is copied: the body is hashed in place."""
    if len(blob) > max_bytes:
        raise HotlistFormatError("hotlist document too large")
    nl = blob.find(b"\n", 0, MAX_HEADER_LINE)
    if nl < 0:
        raise HotlistSignatureError("not a signed hotlist (no envelope line)")
    parts = blob[:nl].split(b" ")
    if len(parts) != 3 or parts[0] != ENVELOPE_FORMAT.encode():
        raise HotlistSignatureError("not a signed hotlist envelope")
    try:
        sig = base64.b64decode(parts[2], validate=True)
    except ValueError as e:
        raise HotlistSignatureError(f"bad base64 signature: {e}") from e
    body = memoryview(blob)[nl + 1:]
    try:
        public_key.verify(sig, SIGNED_PREFIX + hashlib.sha512(body).digest())
    except InvalidSignature as e:
        raise HotlistSignatureError(
            f"signature does not verify with key {key_id(public_key)}"
        ) from e
    head = _read_header(body, max_bytes)
    return _document(head, body, hashlib.sha256(blob).hexdigest())


def _chunks(body: memoryview, max_bytes: int) -> Iterator[bytes]:
    """The body's text in chunks of at most ~1 MiB, gunzipped if need be; at most
    ``max_bytes`` in all."""
    total = 0
    if bytes(body[:2]) != b"\x1f\x8b":
        for i in range(0, len(body), _CHUNK):
            yield bytes(body[i:i + _CHUNK])
        return
    d = zlib.decompressobj(wbits=31)
    try:
        for i in range(0, len(body), _CHUNK):
            data = body[i:i + _CHUNK]
            while data:
                out = d.decompress(data, _CHUNK)
                total += len(out)
                if total > max_bytes:
                    raise HotlistFormatError("hotlist document too large once decompressed")
                yield out
                data = memoryview(d.unconsumed_tail)
        if not d.eof:
            raise HotlistFormatError("truncated gzip stream")
    except zlib.error as e:
        raise HotlistFormatError(f"corrupt gzip: {e}") from e


def _lines(body: memoryview, max_bytes: int) -> Iterator[bytes]:
    rest = b""
    for chunk in _chunks(body, max_bytes):
        data = rest + chunk
        start = 0
        while True:
            nl = data.find(b"\n", start)
            if nl < 0:
                break
            yield data[start:nl]
            start = nl + 1
        rest = data[start:]
        if len(rest) > MAX_PAYLOAD_HEADER:
            raise HotlistFormatError("a line of the hotlist is too long")
    if rest:
        yield rest


def _read_header(body: memoryview, max_bytes: int) -> dict[str, Any]:
    try:
        first = next(_lines(body, max_bytes), b"")
        head = json.loads(first)
    except ValueError as e:
        raise HotlistFormatError(f"malformed hotlist header: {e}") from e
    if not isinstance(head, dict):
        raise HotlistFormatError("hotlist header is not an object")
    return head


def _when(value: Any, what: str) -> datetime:
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError as e:
        raise HotlistFormatError(f"{what} is not an ISO time: {value!r}") from e
    if t.tzinfo is None:
        raise HotlistFormatError(f"{what} has no time zone")
    return t


def _document(d: dict[str, Any], body: memoryview, digest: str) -> SignedDocument:
    if d.get("format") != PAYLOAD_FORMAT:
        raise HotlistFormatError(f"unknown payload format {d.get('format')!r}")
    name, version, kind = d.get("name"), d.get("version"), d.get("kind")
    if not isinstance(name, str) or not 0 < len(name) <= 64 or not name.replace(
        "-", ""
    ).replace("_", "").isalnum() or not name.isascii():
        raise HotlistFormatError(f"bad hotlist name {name!r}")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise HotlistFormatError("version must be a positive integer")
    if kind not in ("full", "delta"):
        raise HotlistFormatError(f"kind must be full or delta, not {kind!r}")
    issued = _when(d.get("issued_at"), "issued_at")
    expires = _when(d.get("expires_at"), "expires_at")
    if expires <= issued:
        raise HotlistFormatError("expires_at must be after issued_at")
    reasons = d.get("reasons")
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise HotlistFormatError("reasons must be a list of strings")
    if len(reasons) > MAX_REASONS:
        raise HotlistFormatError(f"more than {MAX_REASONS} reasons")
    base = d.get("base_version")
    remove: tuple[str, ...] = ()
    if kind == "delta":
        if not isinstance(base, int) or isinstance(base, bool) or not 0 <= base < version:
            raise HotlistFormatError("a delta needs base_version below its version")
        rm = d.get("remove", [])
        if not isinstance(rm, list):
            raise HotlistFormatError("remove must be a list")
        remove = tuple(p for p in (clean_plate(x) if isinstance(x, str) else None for x in rm)
                       if p is not None)
    return SignedDocument(
        name, version, kind, base if kind == "delta" else None, issued, expires,
        tuple(clean_reason(r) for r in reasons), remove, body, digest,
    )


def iter_rows(doc: SignedDocument, stats: ParseStats,
              max_bytes: int = 256 * 1024 * 1024) -> Iterator[Row]:
    """The document's entries, streamed; a row breaking a rule is counted in ``stats``."""
    lines = _lines(doc.body, max_bytes)
    next(lines, None)  # the header, read by verify_signed
    n_reasons = len(doc.reasons)
    for raw in lines:
        if not raw:
            continue
        if len(raw) > MAX_ROW_BYTES:
            stats.refuse("row_too_long", raw)
            continue
        try:
            cols = raw.decode("utf-8").split("\t")
        except UnicodeDecodeError:
            stats.refuse("not_utf8", raw)
            continue
        if len(cols) not in (3, 5):
            stats.refuse("columns", raw)
            continue
        plate = clean_plate(cols[0])
        if plate is None:
            stats.refuse("plate", raw)
            continue
        try:
            r, p = int(cols[1]), int(cols[2])
        except ValueError:
            stats.refuse("number", raw)
            continue
        reason = doc.reasons[r] if 0 <= r < n_reasons else None
        if reason is None:
            stats.refuse("reason", raw)
            continue
        if not -32768 <= p <= 32767:
            stats.refuse("priority", raw)
            continue
        eid = region = None
        if len(cols) == 5:
            eid = clean_id(cols[3]) if cols[3] else None
            region = clean_region(cols[4]) if cols[4] else None
            if (cols[3] and eid is None) or (cols[4] and region is None):
                stats.refuse("id_or_region", raw)
                continue
        yield Row(plate, reason, p, eid, region)
