"""Hotlist matcher: exact, confusion classes, partial reads, candidates, ordering."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inference.hotlist_matcher import (
    PLATE_ALPHABET,
    ConfusionTable,
    Hotlist,
    HotlistEntry,
    HotlistError,
    HotlistMatcher,
    MatcherSettings,
    normalise_plate,
)


def matcher(*plates: str, **kw: object) -> HotlistMatcher:
    entries = tuple(HotlistEntry(p, f"reason {p}", priority=2) for p in plates)
    return HotlistMatcher([Hotlist("stolen", 7, entries)], MatcherSettings(**kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "read,plate,rule,subs",
    [
        ("AB123CD", "AB123CD", "exact", ()),
        ("ab-123 cd", "AB123CD", "exact", ()),
        ("AB12JCD", "AB12JCD", "exact", ()),
        # the confusion table, one class per row
        ("A8123CD", "AB123CD", "confusion", ("1:8>B",)),
        ("0DQ0ABC", "ODQOABC", "confusion", ("0:0>O", "3:0>O")),
        ("DQ0OABC", "ODQOABC", "confusion", ("0:D>O", "1:Q>D", "2:0>Q")),
        ("X1LIABC", "XI1LABC", "confusion", ("1:1>I", "2:L>1", "3:I>L")),
        ("XS5ABC", "X5SABC", "confusion", ("1:S>5", "2:5>S")),
        ("XZ2ABC", "X2ZABC", "confusion", ("1:Z>2", "2:2>Z")),
        ("XG6ABC", "X6GABC", "confusion", ("1:G>6", "2:6>G")),
        ("X4AABC", "XA4ABC", "confusion", ("1:4>A", "2:A>4")),
        ("X7TABC", "XT7ABC", "confusion", ("1:7>T", "2:T>7")),
        ("XUVABC", "XVUABC", "confusion", ("1:U>V", "2:V>U")),
        # partial reads
        ("AB?23CD", "AB123CD", "partial", ("2:?>1",)),
        ("A??23CD", "AB123CD", "partial", ("1:?>B", "2:?>1")),
        ("A8?23CD", "AB123CD", "partial_confusion", ("1:8>B", "2:?>1")),
    ],
)
def test_rules(read: str, plate: str, rule: str, subs: tuple[str, ...]) -> None:
    m = matcher(plate, "ZZZ999")
    hits = m.match(read)
    assert len(hits) == 1, hits
    h = hits[0]
    assert (h.entry.plate, h.rule, h.substitutions) == (plate, rule, subs)
    assert (h.hotlist_name, h.version, h.reason, h.priority) == ("stolen", 7, f"reason {plate}", 2)


@pytest.mark.parametrize(
    "read",
    [
        "AB123CE",  # E is in no class with D
        "AB123C",  # shorter
        "AB123CDD",  # longer
        "AB???CD",  # three unknowns > max_unknown
        "??1??",  # too few known characters
        "",
        "---",
    ],
)
def test_non_matches(read: str) -> None:
    assert matcher("AB123CD").match(read) == []


def test_fuzzy_off_keeps_exact_only() -> None:
    m = matcher("AB123CD", fuzzy=False)
    assert [h.rule for h in m.match("AB123CD")] == ["exact"]
    assert m.match("A8123CD") == []
    assert m.match("AB?23CD") == []


def test_candidates_match_when_primary_does_not() -> None:
    m = matcher("AB123CD", "KX55YYY")
    hits = m.match("AB123CE", candidates=["AB123CD", "KX5SYYY"])
    assert [(h.entry.plate, h.rule) for h in hits] == [
        ("AB123CD", "candidate_exact"),
        ("KX55YYY", "candidate_confusion"),
    ]
    assert matcher("AB123CD", use_candidates=False).match("XX", candidates=["AB123CD"]) == []


def test_strongest_rule_kept_per_entry_and_priority_order() -> None:
    lists = [
        Hotlist("bolo", 1, (HotlistEntry("AB123CD", "low", priority=1),)),
        Hotlist("amber", 3, (HotlistEntry("A8123CD", "child", priority=9),)),
    ]
    m = HotlistMatcher(lists)
    hits = m.match("A8123CD", candidates=["AB123CD"])
    assert [(h.hotlist_name, h.rule) for h in hits] == [("amber", "exact"), ("bolo", "confusion")]
    assert m.versions == {"bolo": 1, "amber": 3}
    assert len(m) == 2


def test_collisions_in_one_class_all_returned() -> None:
    m = matcher("AB0CD12", "ABOCD12", "ABDCD12")
    hits = m.match("ABQCD12")
    assert sorted(h.entry.plate for h in hits) == ["AB0CD12", "ABDCD12", "ABOCD12"]
    assert all(h.rule == "confusion" for h in hits)
    assert [h.rule for h in m.match("AB0CD12")].count("exact") == 1


def test_unnormalised_entry_rejected() -> None:
    with pytest.raises(HotlistError):
        matcher("ab 123")


def test_bad_confusion_table() -> None:
    with pytest.raises(HotlistError):
        ConfusionTable(("0O", "O8"))
    with pytest.raises(HotlistError):
        ConfusionTable(("0",))
    with pytest.raises(HotlistError):
        MatcherSettings(max_unknown=5)


plate_st = st.text(alphabet=PLATE_ALPHABET, min_size=5, max_size=8)


@given(plate=plate_st, data=st.data())
def test_confusion_swaps_always_match(plate: str, data: st.DataObject) -> None:
    table = ConfusionTable()
    classes = {ch: cls for cls in table.classes for ch in cls}
    read = "".join(
        data.draw(st.sampled_from(classes[ch])) if ch in classes else ch for ch in plate
    )
    hits = matcher(plate).match(read)
    assert [h.entry.plate for h in hits] == [plate]
    assert hits[0].rule == ("exact" if read == plate else "confusion")


@given(plate=plate_st, pos=st.integers(0, 7))
def test_one_unknown_always_matches(plate: str, pos: int) -> None:
    pos %= len(plate)
    read = plate[:pos] + "?" + plate[pos + 1:]
    hits = matcher(plate).match(read)
    assert [h.rule for h in hits] == ["partial"]


def test_normalise() -> None:
    assert normalise_plate(" ab-12.c d ") == "AB12CD"
    assert normalise_plate("ab?1", allow_unknown=True) == "AB?1"
    assert normalise_plate("ab?1") == "AB1"


def test_entry_table_columns_merge_and_dedup() -> None:
    from inference.hotlist_matcher import EntryTable

    t = EntryTable.build([HotlistEntry("AAA111", "r1", 1), HotlistEntry("BBB222", "r2", 2),
                          HotlistEntry("AAA111", "r3", 3)])
    assert [(e.plate, e.reason, e.priority) for e in t] == [("BBB222", "r2", 2),
                                                              ("AAA111", "r3", 3)]
    assert t.ids is None and t[-1].plate == "AAA111" and t[0:1] == (t[0],)
    add = EntryTable.build([HotlistEntry("CCC333", "new", 9, "case-1", "GB"),
                            HotlistEntry("BBB222", "r2 updated", 4)])
    m = t.merged({"AAA111"}, add)
    assert [(e.plate, e.reason, e.priority, e.entry_id, e.region) for e in m] == [
        ("CCC333", "new", 9, "case-1", "GB"), ("BBB222", "r2 updated", 4, None, None)]
    assert t == [t[0], t[1]] and t != [t[0]]
    with pytest.raises(IndexError):
        t[5]
    hl = Hotlist("x", 1, m)
    assert hl.entries is m
    assert [h.entry.plate for h in HotlistMatcher([hl]).match("CCC33?")] == ["CCC333"]
