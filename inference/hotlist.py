"""Hotlist matching: exact, OCR-confusion-aware and partial reads, with the rule that matched.

Pure logic, no I/O. A :class:`Hotlist` is a verified list (see ``firmware.hotlists`` for the
signed file format); :class:`HotlistMatcher` compiles one index per list and answers
``match(text, candidates)`` with every entry the read may be.

How a read matches an entry (rules, strongest first):

* ``exact`` -- the normalised read equals the entry.
* ``confusion`` -- equal once every character is replaced by its confusion class (``O``/``0``/
  ``D``/``Q`` are one class, ``I``/``1``/``L`` another ...). The positions that differ are
  listed in :attr:`HotlistMatch.substitutions`.
* ``partial`` / ``partial_confusion`` -- the read holds ``?`` for characters the reader could
  not tell; every known character matches (exactly / up to confusion) and the lengths agree.
* ``candidate_*`` -- the same rules applied to the reader's alternative candidates when the
  primary text did not match that entry.

The index keys every entry by its confusion-class form, so an exact or confusion lookup is one
dict probe whatever the list size; a partial read with ``k`` unknown characters costs
``len(alphabet) ** k`` probes, which is why ``max_unknown`` is bounded (default 2, ~700 probes).
Entries are stored column-wise (parallel lists) rather than as one object each, so a million
entries fit in ~150 MB instead of ~400 MB on a Pi.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from inference.errors import InferenceError

#: Characters a plate reader confuses with each other. Each string is one class; the first
#: character is the class representative. Documented in docs/hotlists.md.
DEFAULT_CONFUSION_CLASSES: tuple[str, ...] = (
    "0ODQ",
    "1IL",
    "8B",
    "5S",
    "2Z",
    "6G",
    "4A",
    "7T",
    "UV",
)

PLATE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
UNKNOWN = "?"

RULE_RANK: dict[str, int] = {
    "exact": 0,
    "confusion": 1,
    "partial": 2,
    "partial_confusion": 3,
    "candidate_exact": 4,
    "candidate_confusion": 5,
    "candidate_partial": 6,
    "candidate_partial_confusion": 7,
}


class HotlistError(InferenceError, ValueError):
    """A hotlist or matcher setting is malformed (bad plate text, bad confusion table)."""


@dataclass(frozen=True)
class HotlistEntry:
    """One wanted plate. Higher ``priority`` is more urgent (as in ``storage.records.AlertRecord``,
    forwarded first); ``reason`` is the agency's words."""

    plate: str
    reason: str
    priority: int = 5
    entry_id: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class Hotlist:
    """A verified hotlist at one version. ``entries`` plates are already normalised."""

    name: str
    version: int
    entries: tuple[HotlistEntry, ...]


@dataclass(frozen=True)
class HotlistMatch:
    """One entry a read may be, and why: enough to build a ``storage.records.AlertRecord``."""

    entry: HotlistEntry
    rule: str
    hotlist_name: str
    version: int
    reason: str
    priority: int
    read_text: str
    #: ``"pos:read>entry"`` for every position where the read differs from the entry
    #: (a confusion substitution or an unknown ``?``), 0-based.
    substitutions: tuple[str, ...] = ()


def normalise_plate(text: str, *, allow_unknown: bool = False) -> str:
    """Upper-case and drop separators (spaces, dashes, dots). ``?`` kept only if allowed."""
    out = []
    for ch in text.upper():
        if ch in PLATE_ALPHABET:
            out.append(ch)
        elif ch == UNKNOWN and allow_unknown:
            out.append(ch)
    return "".join(out)


class ConfusionTable:
    """Maps each character to its confusion-class representative."""

    def __init__(self, classes: Sequence[str] = DEFAULT_CONFUSION_CLASSES) -> None:
        seen: dict[str, str] = {}
        for cls in classes:
            cls = cls.upper()
            if len(cls) < 2:
                raise HotlistError(f"confusion class {cls!r} needs at least two characters")
            for ch in cls:
                if ch not in PLATE_ALPHABET:
                    raise HotlistError(f"confusion class {cls!r}: {ch!r} is not a plate character")
                if ch in seen:
                    raise HotlistError(f"{ch!r} is in two confusion classes")
                seen[ch] = cls[0]
        self.classes = tuple(c.upper() for c in classes)
        self._table = str.maketrans(seen)
        self.alphabet = "".join(sorted({seen.get(c, c) for c in PLATE_ALPHABET}))

    def canon(self, text: str) -> str:
        return text.translate(self._table)


@dataclass(frozen=True)
class MatcherSettings:
    """Fuzzy-matching knobs. ``max_unknown`` bounds the ``?`` count (cost grows 26x per ``?``);
    ``min_known`` stops a read like ``??1`` from matching half the list."""

    fuzzy: bool = True
    max_unknown: int = 2
    min_known: int = 4
    use_candidates: bool = True
    confusion_classes: tuple[str, ...] = DEFAULT_CONFUSION_CLASSES

    def __post_init__(self) -> None:
        if not 0 <= self.max_unknown <= 3:
            raise HotlistError("max_unknown must be within 0..3")
        if self.min_known < 1:
            raise HotlistError("min_known must be at least 1")


class _Index:
    """One hotlist compiled for lookup by confusion-class key."""

    __slots__ = (
        "name", "version", "plates", "reasons", "priorities", "ids", "regions", "by_canon",
    )

    def __init__(self, hotlist: Hotlist, table: ConfusionTable) -> None:
        self.name = hotlist.name
        self.version = hotlist.version
        n = len(hotlist.entries)
        self.plates: list[str] = [""] * n
        self.reasons: list[str] = [""] * n
        self.priorities = array("h", bytes(2 * n))
        self.ids: list[str | None] = [None] * n
        self.regions: list[str | None] = [None] * n
        # A key maps to an int (the common case) or a list of ints (confusion collisions):
        # avoiding a one-element list per entry saves ~60 MB per million entries.
        self.by_canon: dict[str, int | list[int]] = {}
        interned: dict[str, str] = {}
        canon = table.canon
        by_canon = self.by_canon
        for i, e in enumerate(hotlist.entries):
            plate = e.plate
            if not plate or normalise_plate(plate) != plate:
                raise HotlistError(f"hotlist {hotlist.name!r}: plate {plate!r} is not normalised")
            self.plates[i] = plate
            self.reasons[i] = interned.setdefault(e.reason, e.reason)
            self.priorities[i] = e.priority
            self.ids[i] = e.entry_id
            self.regions[i] = e.region
            key = canon(plate)
            prev = by_canon.get(key)
            if prev is None:
                by_canon[key] = i
            elif isinstance(prev, int):
                by_canon[key] = [prev, i]
            else:
                prev.append(i)

    def __len__(self) -> int:
        return len(self.plates)

    def lookup(self, key: str) -> list[int]:
        hit = self.by_canon.get(key)
        if hit is None:
            return []
        return [hit] if isinstance(hit, int) else hit

    def entry(self, i: int) -> HotlistEntry:
        return HotlistEntry(
            plate=self.plates[i],
            reason=self.reasons[i],
            priority=int(self.priorities[i]),
            entry_id=self.ids[i],
            region=self.regions[i],
        )


def _diff(read: str, plate: str) -> tuple[str, ...]:
    return tuple(f"{i}:{r}>{p}" for i, (r, p) in enumerate(zip(read, plate, strict=True)) if r != p)


class HotlistMatcher:
    """Matches reads against one or more compiled hotlists. Immutable once built: to update,
    build a new matcher and swap the reference (readers never see a half-built index)."""

    def __init__(
        self, hotlists: Iterable[Hotlist] = (), settings: MatcherSettings | None = None
    ) -> None:
        self.settings = settings or MatcherSettings()
        self.table = ConfusionTable(self.settings.confusion_classes)
        self._indexes = tuple(_Index(h, self.table) for h in hotlists)

    @property
    def versions(self) -> dict[str, int]:
        return {ix.name: ix.version for ix in self._indexes}

    def __len__(self) -> int:
        return sum(len(ix) for ix in self._indexes)

    def match(self, text: str, candidates: Iterable[str] = ()) -> list[HotlistMatch]:
        """Every entry ``text`` (or, failing that entry, an alternative candidate) may be.

        Sorted most urgent first: by entry priority (higher first), then rule strength. One match per
        (hotlist, entry) with the strongest rule that fired.
        """
        best: dict[tuple[int, int], HotlistMatch] = {}
        self._match_one(text, "", best)
        if self.settings.use_candidates:
            for cand in candidates:
                if cand != text:
                    self._match_one(cand, "candidate_", best)
        return sorted(
            best.values(), key=lambda m: (-m.priority, RULE_RANK[m.rule], m.hotlist_name)
        )

    def _match_one(self, raw: str, prefix: str, best: dict[tuple[int, int], HotlistMatch]) -> None:
        read = normalise_plate(raw, allow_unknown=True)
        if not read:
            return
        unknown = read.count(UNKNOWN)
        if unknown:
            if not self.settings.fuzzy or unknown > self.settings.max_unknown:
                return
            if len(read) - unknown < self.settings.min_known:
                return
            keys = self._wildcard_keys(read)
        else:
            keys = [self.table.canon(read)]
        for n, ix in enumerate(self._indexes):
            for key in keys:
                for i in ix.lookup(key):
                    plate = ix.plates[i]
                    rule = self._rule(read, plate, unknown > 0)
                    if rule is None:
                        continue
                    rule = prefix + rule
                    prev = best.get((n, i))
                    if prev is not None and RULE_RANK[prev.rule] <= RULE_RANK[rule]:
                        continue
                    best[(n, i)] = HotlistMatch(
                        entry=ix.entry(i),
                        rule=rule,
                        hotlist_name=ix.name,
                        version=ix.version,
                        reason=ix.reasons[i],
                        priority=int(ix.priorities[i]),
                        read_text=read,
                        substitutions=_diff(read, plate),
                    )

    def _rule(self, read: str, plate: str, partial: bool) -> str | None:
        if len(read) != len(plate):
            return None
        if partial:
            exact_known = all(r == UNKNOWN or r == p for r, p in zip(read, plate, strict=True))
            if exact_known:
                return "partial"
            return "partial_confusion" if self.settings.fuzzy else None
        if read == plate:
            return "exact"
        return "confusion" if self.settings.fuzzy else None

    def _wildcard_keys(self, read: str) -> list[str]:
        canon = self.table.canon(read)
        slots = [i for i, ch in enumerate(canon) if ch == UNKNOWN]
        chars = list(canon)
        keys = []
        for fill in itertools.product(self.table.alphabet, repeat=len(slots)):
            for pos, ch in zip(slots, fill, strict=True):
                chars[pos] = ch
            keys.append("".join(chars))
        return keys
