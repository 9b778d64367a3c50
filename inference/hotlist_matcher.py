"""Hotlist matching: exact, OCR-confusion-aware and partial reads, with the rule that matched.

Pure logic, no I/O. A :class:`Hotlist` is a verified list (see ``firmware.link.hotlists`` for the
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

The index keeps every entry's confusion-class form in one sorted list (binary search), so an
exact or confusion lookup costs O(log n) string compares whatever the list size; a partial read
with ``k`` unknown characters costs ``len(alphabet) ** k`` lookups, which is why
``max_unknown`` is bounded (default 2, ~700 lookups). Entries are held column-wise
(:class:`EntryTable`: parallel lists and arrays, no object per entry) and shared between the
verified list and the index, so a million entries cost ~150 MB rather than ~500 MB.
"""

from __future__ import annotations

import itertools
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
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


class EntryTable(Sequence[HotlistEntry]):
    """Hotlist entries stored column-wise; indexing builds a :class:`HotlistEntry` on demand.

    Immutable by convention (no method mutates it). Plates must be normalised.
    """

    __slots__ = ("ids", "plates", "priorities", "reason_idx", "reasons", "regions")

    def __init__(
        self,
        plates: list[str],
        reasons: tuple[str, ...],
        reason_idx: array[int],
        priorities: array[int],
        ids: list[str | None] | None = None,
        regions: list[str | None] | None = None,
    ) -> None:
        n = len(plates)
        if not (len(reason_idx) == len(priorities) == n):
            raise HotlistError("entry table columns differ in length")
        if (ids is not None and len(ids) != n) or (regions is not None and len(regions) != n):
            raise HotlistError("entry table columns differ in length")
        self.plates = plates
        self.reasons = reasons
        self.reason_idx = reason_idx
        self.priorities = priorities
        self.ids = ids
        self.regions = regions

    @classmethod
    def build(cls, entries: Iterable[HotlistEntry]) -> EntryTable:
        """From entries; a plate seen twice keeps its last entry (an update replaces)."""
        by_plate: dict[str, HotlistEntry] = {}
        for e in entries:
            by_plate.pop(e.plate, None)  # re-insert so the order is that of the last sighting
            by_plate[e.plate] = e
        reasons: dict[str, int] = {}
        plates, ridx, prio = [], array("I"), array("h")
        ids: list[str | None] = []
        regions: list[str | None] = []
        for e in by_plate.values():
            plates.append(e.plate)
            ridx.append(reasons.setdefault(e.reason, len(reasons)))
            prio.append(e.priority)
            ids.append(e.entry_id)
            regions.append(e.region)
        return cls(
            plates, tuple(reasons), ridx, prio,
            ids if any(x is not None for x in ids) else None,
            regions if any(x is not None for x in regions) else None,
        )

    def __len__(self) -> int:
        return len(self.plates)

    def entry(self, i: int) -> HotlistEntry:
        return HotlistEntry(
            plate=self.plates[i],
            reason=self.reasons[self.reason_idx[i]],
            priority=int(self.priorities[i]),
            entry_id=self.ids[i] if self.ids is not None else None,
            region=self.regions[i] if self.regions is not None else None,
        )

    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        if isinstance(i, slice):
            return tuple(self.entry(j) for j in range(*i.indices(len(self))))
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.entry(i)

    def __iter__(self) -> Iterator[HotlistEntry]:
        return (self.entry(i) for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def merged(self, drop: set[str], add: EntryTable) -> EntryTable:
        """This table without the plates in ``drop`` or in ``add``, then ``add`` appended."""
        gone = drop | set(add.plates)
        keep = [i for i, p in enumerate(self.plates) if p not in gone]
        reasons: dict[str, int] = {r: i for i, r in enumerate(self.reasons)}
        add_map = array("I", (reasons.setdefault(r, len(reasons)) for r in add.reasons))
        plates = [self.plates[i] for i in keep] + list(add.plates)
        ridx = array("I", (self.reason_idx[i] for i in keep))
        ridx.extend(add_map[j] for j in add.reason_idx)
        prio = array("h", (self.priorities[i] for i in keep))
        prio.extend(add.priorities)

        def col(a: list[str | None] | None, b: list[str | None] | None, nb: int
                ) -> list[str | None] | None:
            if a is None and b is None:
                return None
            left: list[str | None] = [a[i] for i in keep] if a is not None else [None] * len(keep)
            right: list[str | None] = list(b) if b is not None else [None] * nb
            return left + right

        return EntryTable(plates, tuple(reasons), ridx, prio,
                          col(self.ids, add.ids, len(add)), col(self.regions, add.regions,
                                                                  len(add)))


@dataclass(frozen=True)
class Hotlist:
    """A verified hotlist at one version. ``entries`` plates are already normalised; a plain
    sequence of :class:`HotlistEntry` is turned into an :class:`EntryTable`."""

    name: str
    version: int
    entries: EntryTable

    def __init__(self, name: str, version: int, entries: Iterable[HotlistEntry]) -> None:
        table = entries if isinstance(entries, EntryTable) else EntryTable.build(entries)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "entries", table)


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
        if ch in PLATE_ALPHABET or (ch == UNKNOWN and allow_unknown):
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
    """One hotlist compiled for lookup by confusion-class key: the keys sorted in one list,
    with the entry number of each alongside (binary search; no per-entry dict slot or int)."""

    __slots__ = ("keys", "name", "rows", "table", "version")

    def __init__(self, hotlist: Hotlist, table: ConfusionTable) -> None:
        self.name = hotlist.name
        self.version = hotlist.version
        self.table = hotlist.entries
        plates = self.table.plates
        for p in plates:
            if not p or normalise_plate(p) != p:
                raise HotlistError(f"hotlist {hotlist.name!r}: plate {p!r} is not normalised")
        canon = table.canon
        keys = [canon(p) for p in plates]
        order = sorted(range(len(keys)), key=keys.__getitem__)
        self.keys = [keys[i] for i in order]
        self.rows = array("I", order)

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self, key: str) -> list[int]:
        keys = self.keys
        i = bisect_left(keys, key)
        out = []
        while i < len(keys) and keys[i] == key:
            out.append(self.rows[i])
            i += 1
        return out


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

        Sorted most urgent first: by entry priority (higher first), then rule strength.
        One match per (hotlist, entry) with the strongest rule that fired.
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
                    plate = ix.table.plates[i]
                    rule = self._rule(read, plate, unknown > 0)
                    if rule is None:
                        continue
                    rule = prefix + rule
                    prev = best.get((n, i))
                    if prev is not None and RULE_RANK[prev.rule] <= RULE_RANK[rule]:
                        continue
                    entry = ix.table.entry(i)
                    best[(n, i)] = HotlistMatch(
                        entry=entry,
                        rule=rule,
                        hotlist_name=ix.name,
                        version=ix.version,
                        reason=entry.reason,
                        priority=entry.priority,
                        read_text=read,
                        substitutions=_diff(read, plate),
                    )

    def _rule(self, read: str, plate: str, partial: bool) -> str | None:
        if len(read) != len(plate):
            return None
        if partial:
            exact_known = all(r in (UNKNOWN, p) for r, p in zip(read, plate, strict=True))
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
