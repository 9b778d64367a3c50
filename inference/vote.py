"""One read per pass: a character-level vote over every frame of a plate track.

Pure logic, no I/O.

The vote, for a :class:`~inference.tracker.PlateTrack`:

1. Each frame's read has a weight (the reader's confidence) and per-character confidences.
2. Length first: the length with the largest summed weight wins (a clipped first frame or a
   spurious extra character is outvoted rather than shifting every position).
3. Reads of that length vote position by position, each character adding
   ``weight x char_confidence``. Reads of other lengths are aligned to that provisional consensus
   (edit-distance alignment) and vote, at half weight, only where they align with a character.
4. A position's share for a character = its votes / the weight of every read covering the
   position, so ``?`` (the reader could not tell) and disagreement both lower the share.
5. Candidates: a beam over positions of the top characters gives the most probable strings
   (ranked by the product of shares); the first is the read.
6. Confidence = the *weakest* position's share: a read is as good as its least certain character.
   Not the product of shares: that falls with plate length (0.9 per character is 0.48 for seven
   characters) although unanimity over 20 frames is stronger evidence than one frame at 0.9, and
   a threshold on it would mean different things for 5- and 8-character plates.

Region and plate class are weighted votes too. The best crop is the track's best observation
(:func:`inference.tracker.observation_quality`: resolution x sharpness x confidence).

:class:`Deduplicator` makes sure a pass is read once: the same text in the same direction within
``dedup_window_s`` (a track that split when a lorry hid the plate for a moment) is suppressed.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

from inference.passes import VotedRead
from inference.records import Candidate
from inference.tracker import PlateTrack, TrackerSettings

log = logging.getLogger(__name__)

UNKNOWN = "?"
OTHER_LENGTH_WEIGHT = 0.5
FULL_WEIGHT_WIDTH_PX = 160.0  # the plate reader's input width
MIN_SIZE_WEIGHT = 0.2
BEAM_CHARS = 3


@dataclass(frozen=True)
class _Read:
    text: str
    char_conf: tuple[float, ...]
    weight: float


def _reads(track: PlateTrack) -> list[_Read]:
    out: list[_Read] = []
    for p in track.points:
        ocr = p.observation.ocr
        if not ocr.text:
            continue
        cc = ocr.char_confidences
        if len(cc) != len(ocr.text):
            cc = (ocr.confidence,) * len(ocr.text)
        # A distant plate is upscaled into the reader's 160 px input and its read is noisier
        # than its softmax admits: weigh each frame by how many real pixels it had too.
        size = min(1.0, max(MIN_SIZE_WEIGHT, p.observation.detection.box.w / FULL_WEIGHT_WIDTH_PX))
        out.append(
            _Read(ocr.text, tuple(min(1.0, max(0.0, c)) for c in cc),
                  max(ocr.confidence, 0.01) * size)
        )
    return out


def align(a: str, b: str) -> list[tuple[int | None, int | None]]:
    """Edit-distance alignment of ``a`` to ``b``: pairs (index in a | None, index in b | None)."""
    n, m = len(a), len(b)
    d = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        d[i][0] = i
    for j in range(m + 1):
        d[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            sub = 0 if a[i - 1] == b[j - 1] else 1
            d[i][j] = min(d[i - 1][j - 1] + sub, d[i - 1][j] + 1, d[i][j - 1] + 1)
    pairs: list[tuple[int | None, int | None]] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i][j] == d[i - 1][j - 1] + (0 if a[i - 1] == b[j - 1] else 1):
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif i > 0 and d[i][j] == d[i - 1][j] + 1:
            pairs.append((i - 1, None))
            i -= 1
        else:
            pairs.append((None, j - 1))
            j -= 1
    pairs.reverse()
    return pairs


def edit_distance(a: str, b: str) -> int:
    return sum(1 for i, j in align(a, b) if i is None or j is None or a[i] != b[j])


def _shares(reads: list[_Read]) -> list[dict[str, float]]:
    """Per-position character shares (0..1) after the length vote and alignment."""
    by_len: dict[int, float] = defaultdict(float)
    for r in reads:
        by_len[len(r.text)] += r.weight
    length = max(by_len, key=lambda n: (by_len[n], n))
    same = [r for r in reads if len(r.text) == length]
    others = [r for r in reads if len(r.text) != length]

    votes: list[dict[str, float]] = [defaultdict(float) for _ in range(length)]
    cover = [0.0] * length
    for r in same:
        for pos, (ch, c) in enumerate(zip(r.text, r.char_conf, strict=True)):
            cover[pos] += r.weight
            if ch != UNKNOWN:
                votes[pos][ch] += r.weight * c
    provisional = "".join(max(v, key=lambda k: v[k]) if v else UNKNOWN for v in votes)
    for r in others:
        w = r.weight * OTHER_LENGTH_WEIGHT
        for i, j in align(r.text, provisional):
            if i is None or j is None:
                continue
            cover[j] += w
            if r.text[i] != UNKNOWN:
                votes[j][r.text[i]] += w * r.char_conf[i]
    return [
        {ch: v / cover[pos] for ch, v in votes[pos].items()} if cover[pos] > 0 else {}
        for pos in range(length)
    ]


def _beam(shares: list[dict[str, float]], n: int) -> list[Candidate]:
    """Top-n strings ranked by the product of shares; each reported with its weakest share."""
    beams: list[tuple[str, float, float]] = [("", 1.0, 1.0)]
    for dist in shares:
        options = sorted(dist.items(), key=lambda kv: -kv[1])[:BEAM_CHARS]
        if not options:
            options = [(UNKNOWN, 0.0)]
        beams = sorted(
            ((text + ch, p * q, min(m, q)) for text, p, m in beams for ch, q in options),
            key=lambda b: (-b[1], -b[2]),
        )[: max(n, BEAM_CHARS)]
    return [Candidate(text, round(m, 6)) for text, _, m in beams[:n]]


def _weighted_vote(items: list[tuple[str | None, float]]) -> tuple[str | None, float]:
    totals: dict[str, float] = defaultdict(float)
    all_w = 0.0
    for key, w in items:
        all_w += w
        if key is not None:
            totals[key] += w
    if not totals or all_w <= 0:
        return None, 0.0
    best = max(totals, key=lambda k: totals[k])
    return best, totals[best] / all_w


def vote_track(track: PlateTrack, settings: TrackerSettings | None = None) -> VotedRead:
    """The pass's read. A track whose every frame read nothing gives ``text == ""``, confidence 0.

    Region confidence = the winning region's share of reader weight x its mean per-frame region
    confidence; plate class is ``partial`` whenever the voted text still has a ``?``.
    """
    s = settings or TrackerSettings()
    reads = _reads(track)
    if reads:
        shares = _shares(reads)
        candidates = _beam(shares, s.candidates)
        text = candidates[0].text
        char_conf = tuple(round(shares[i].get(ch, 0.0), 6) for i, ch in enumerate(text))
        confidence = candidates[0].confidence
    else:
        candidates, text, char_conf, confidence = [], "", (), 0.0

    obs = [p.observation for p in track.points]
    region, region_share = _weighted_vote(
        [(o.ocr.region, max(o.ocr.confidence, 0.01)) for o in obs]
    )
    region_conf = 0.0
    if region is not None:
        confs = [o.ocr.region_confidence for o in obs if o.ocr.region == region]
        region_conf = region_share * (sum(confs) / len(confs))
    plate_class, _ = _weighted_vote([(o.ocr.plate_class, max(o.ocr.confidence, 0.01)) for o in obs])
    if UNKNOWN in text or not text:
        plate_class = "partial"

    best = track.points[track.best_index]
    return VotedRead(
        track_id=track.track_id,
        text=text,
        confidence=confidence,
        char_confidences=char_conf,
        candidates=tuple(candidates),
        region=region,
        region_confidence=round(region_conf, 6),
        plate_class=plate_class or "full",
        box=best.observation.detection.box,
        best_crop=best.observation.crop,
        best_frame_index=track.best_index,
        best_frame_s=best.frame_time_s,
        first_seen_s=track.first_seen_s,
        last_seen_s=track.last_seen_s,
        frames_used=len(reads),
        direction=track.direction,
        vehicle_box=best.vehicle_box,
        best_frame=track.best_frame,
    )


class Deduplicator:
    """Admits a voted read unless the same text (same direction) was admitted within the window.

    The window runs from the previous pass's ``last_seen_s`` to the new one's ``first_seen_s``
    (frame times, monotonic). Empty texts are never treated as duplicates of each other: two
    unreadable plates are two passes.
    """

    def __init__(self, dedup_window_s: float = 10.0, max_edits: int = 0) -> None:
        self._window = dedup_window_s
        self._max_edits = max_edits
        self._recent: list[tuple[str, str, float]] = []  # (text, direction, last_seen_s)
        self.suppressed = 0

    def admit(self, read: VotedRead) -> bool:
        horizon = read.first_seen_s - self._window
        self._recent = [r for r in self._recent if r[2] >= horizon]
        if read.text:
            for text, direction, _ in self._recent:
                if direction != read.direction:
                    continue
                if text == read.text or (
                    self._max_edits > 0
                    and UNKNOWN not in text + read.text
                    and edit_distance(text, read.text) <= self._max_edits
                ):
                    self.suppressed += 1
                    log.info(
                        "duplicate pass suppressed",
                        extra={"track_id": read.track_id, "direction": read.direction},
                    )
                    self._recent.append((read.text, read.direction, read.last_seen_s))
                    return False
        self._recent.append((read.text, read.direction, read.last_seen_s))
        return True
