"""Frame in, plates read out: detector -> rectified crop -> OCR, for every plate in a frame.

:class:`PlateEngine` is what the pipeline and ``vigil read`` call. It owns one detector and one
reader (both int8 TFLite, see ``docs/models-detector.md`` and ``docs/models-ocr.md``), so one
engine per worker thread; still photos add the plate map, a text-line finder and a second reader
for small and two-row plates.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from drivers.resource import Closing
from inference import rows
from inference.detector import DetectorSettings, PlateDetector, as_grey, wants_windows
from inference.errors import FrameError, ModelError
from inference.geometry import (
    crop_box,
    expand_box,
    letterbox_scale,
    level_crop,
    rectify,
    roll_degrees,
)
from inference.ocr import PlateReader, char_marginals, in_format
from inference.plate_design import shows_mercosur_band
from inference.plate_formats import fits_europe, without_band
from inference.records import Box, Candidate, Detection, FrameResult, OcrResult, PlateObservation
from inference.textlines import TextLineFinder, TextLineSettings, plate_candidates

log = logging.getLogger(__name__)
_T = TypeVar("_T")

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "models"
COUNTRIES = ("auto", "us", "eu", "br")
# Margins around a plate box before OCR, as fractions of its width and height: the OCR model
# was trained on crops with -3..8 % horizontal and -5..15 % vertical border.
BOX_MARGIN = (0.04, 0.08)
# Plate formats used to re-rank candidates when the country is known. Loose on purpose: a
# country's vanity and older formats must still pass; only clearly foreign shapes drop. Europe's
# are national formats, ``inference.plate_formats``.
_FORMATS = {
    "us": re.compile(r"^[A-Z0-9]{2,8}$"),
    "br": re.compile(r"^[A-Z]{3}[0-9][A-Z0-9][0-9]{2}$"),
}
# The region head's design class for Brazil's Mercosur plate (``training.recognizer.region_head``,
# ``OcrResult.design``), and the region of a plate read as one (family ``br``). A read the head
# gives it at least ``MERCOSUR_CONFIDENCE``, whose crop shows the plate's blue band too, is read
# in the Mercosur format alone (:func:`as_mercosur`). On the val part's sets (every plate the
# engine reported, 1,415 on real photos): at 0.8 no real plate and 153 / 149 of the 194 / 195
# pasted Mercosur plates in FE-Schrift / the held-out face; at 0.7 two real ones (a grey
# Brazilian plate and a European one), at 0.9 128 / 124 Mercosur plates.
MERCOSUR_REGION = "br-mercosur"
MERCOSUR_CONFIDENCE = 0.8
# ...and whose own read is 6-8 characters (seven, one dropped or one doubled): a line of blue
# lettering (``METROPOLITAN`` over ``POLICE`` on a car in the dev part, read ``1ETR0P01TAN``) is
# called Mercosur at 0.94 with a band, and read in the format it became ``ETR0P01`` at 0.89.
MERCOSUR_READ_LENGTHS = (6, 8)
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGITS = "0123456789"
# Brazil's Mercosur car plate: three letters, a digit, a letter, two digits (ABC1D23).
MERCOSUR_PLACES = (_LETTERS, _LETTERS, _LETTERS, _DIGITS, _LETTERS, _DIGITS, _DIGITS)
_MERCOSUR_FORMAT = re.compile("^" + "".join(f"[{p}]" for p in MERCOSUR_PLACES) + "$")


@dataclass(frozen=True)
class EngineSettings:
    """``country``: ``auto`` or ``us`` / ``eu`` / ``br`` (prefers that country's plate formats
    and regions). ``top_n``: OCR candidates kept, 1..50. ``max_plates``: plates read per frame
    (the best-scoring ones), 1..64. ``min_legible_chars``: a detection whose read has fewer
    characters at probability >= 0.5 is not reported as a plate, 0..4 (0 keeps all)."""

    country: str = "auto"
    top_n: int = 10
    max_plates: int = 8
    # The reader is the second opinion on what the detector calls a plate: on the real-scene dev
    # part, 77 % of the detector's false plates read fewer than two legible characters, and 4 %
    # of its true ones (mostly plates a person cannot read either). Three since characters of a
    # doubtful read carry their share of the candidates (``inference.ocr.char_marginals``):
    # 2 / 3 / 4 gave false plates 0.17 / 0.12 / 0.08 per image on the dev part at the same exact
    # read, and found plates 77.0 / 76.2 / 74.8 %. docs/models-detector.md.
    min_legible_chars: int = 3
    # Still photos only (``vigil read``, ``vigil eval``): when the plate detector gives nothing
    # legible, read the lines the pretrained text detector finds (``inference.textlines``) and
    # keep those that read like a whole plate. Off in the daemon, which sees each vehicle in
    # many frames and has no time for a 30 ms pass on every empty one.
    text_fallback: bool = False
    # Each plate is also read cut exactly at its box, and the surer read kept: the detector's
    # boxes are sometimes loose and sometimes tight, and one margin cannot suit both. On the dev
    # part 92.2 -> 93.0 % exact, a quarter of its sweep 69.5 -> 71.0 %, its openimages sweep
    # 68.3 -> 71.4 %; one more read (about 9 ms) per plate.
    second_crop: bool = True
    # Still photos only, like the text fallback: PP-OCRv4's text detector fine-tuned here to
    # mark whole plates (``training/platemap``) looks at the photo too; each plate both found
    # is read in both boxes, and a plate only the map found is kept on a whole, certain read
    # with a digit. Dev part 93.0 -> 95.5 % exact, its openimages scenes 82.3 -> 89.4 %, a
    # quarter of its sweep 71.0 -> 73.4 %. Off in the daemon: about 30 ms a frame here.
    plate_map: bool = False
    # A read at least this sure ends its plate's reading: the exact cut and the map's box are
    # not read (None reads every crop). The other crops exist for unsure reads; at 0.98 the
    # dev part (a third), a twelfth of its sweep and the daemon's engine on the dev third read
    # exactly as with every crop read, for a fifth less time per photo (dev third 128 -> 105
    # ms); 0.95 and 0.9 lost a plate or two on the sweep.
    sure_read: float | None = 0.98
    # A plate short enough to hold two rows, read short as one line, is also read with its rows
    # side by side, and a row-shaped box read short is grown by a row to find the other one
    # (``inference.rows``).
    two_rows: bool = True
    # Still photos only: a frame the detector sees shrunk (a 1280x720 one at half size) is also
    # looked at in windows at native pixels (:data:`WINDOW_SCALE`), for plates too small to be
    # seen shrunk; a plate only a window found is kept on a whole, certain read with a digit,
    # as one only the map found. Off in the daemon: several detector passes a frame.
    native_windows: bool = False

    def __post_init__(self) -> None:
        if self.country not in COUNTRIES:
            raise ValueError(f"country must be one of {COUNTRIES}, got {self.country!r}")
        if not 1 <= self.top_n <= 50:
            raise ValueError(f"top_n must be 1..50, got {self.top_n}")
        if not 1 <= self.max_plates <= 64:
            raise ValueError(f"max_plates must be 1..64, got {self.max_plates}")
        if not 0 <= self.min_legible_chars <= 4:
            raise ValueError(f"min_legible_chars must be 0..4, got {self.min_legible_chars}")
        if self.sure_read is not None and not 0.5 <= self.sure_read <= 1.0:
            raise ValueError(f"sure_read must be 0.5..1 or None, got {self.sure_read}")


def region_family(region: str | None) -> str | None:
    if not region:
        return None
    return region.split("-", 1)[0]


# With the country left to ``auto``, a read the region head places in Brazil at least this surely
# is re-ranked by Brazil's formats as if ``br`` were configured. Brazil's two formats are strict
# (ABC1D23, ABC1234) where US and European ones are not. On the Brazilian crop photos' val split
# read as photos 91.6 -> 92.4 % exact (0.6: 92.7 %, but found plates on a twelfth of the dev
# sweep -0.2); the US photos, the dev third and the dev sweep read the same.
AUTO_FORMAT_REGIONS = ("br",)
AUTO_FORMAT_CONFIDENCE = 0.9
# A read the region head places in Europe at least this surely, whose top candidate fits no
# European format (``inference.plate_formats``), takes the likeliest candidate that fits one,
# when that candidate is at least ``EU_FORMAT_RATIO`` as likely as the top one. Europe's formats
# are many and loose together, so the table only chooses among the reader's own likely texts.
EU_FORMAT_CONFIDENCE = 0.9
EU_FORMAT_RATIO = 0.1


# A read of a plate's two rows put side by side (``inference.rows``) whose top candidate fits no
# Brazilian format takes the likeliest candidate that does, when that candidate is at least this
# share as likely as the top one and the country is ``auto``. The region head never learnt the
# Mercosur motorcycle plate (two rows) and calls it European, so the Brazil re-ranking above
# never starts for it; square European and British plates fit no Brazilian format. Synthetic
# two-row plates cut at their true box, read stitched: Mercosur 68.3 -> 76.1 %, European 75.5 %
# either way (docs/models-ocr.md).
TWO_ROW_BRAZIL_RATIO = 0.1


def prefer_brazil_two_row(ocr: OcrResult, country: str) -> OcrResult:
    """``ocr`` (a stitched two-row read) re-ranked by Brazil's formats when the country is
    ``auto`` and a likely candidate fits one (:data:`TWO_ROW_BRAZIL_RATIO`). Pure."""
    if country != "auto" or not ocr.candidates:
        return ocr
    fits = _fits("br")
    if fits(ocr.text.replace("?", "A")):
        return ocr
    top = ocr.candidates[0].confidence
    if not any(
        fits(c.text) and c.confidence >= TWO_ROW_BRAZIL_RATIO * top for c in ocr.candidates
    ):
        return ocr
    return apply_country(ocr, "br")


def two_row_formats(ocr: OcrResult, country: str) -> OcrResult:
    """A stitched two-row read (``inference.rows``) re-ranked by plate formats. Pure.

    In ``auto`` Brazil's formats come before Europe's: the region head calls the Mercosur
    motorcycle plate European, and Europe's rule (:func:`apply_country`) would trade a read
    that fits Brazil (ABC1D23) for a less likely one that fits a European format (ABC1234,
    the older Brazilian format too), which is how ``IYW5Z31`` at 0.70 was reported as
    ``IYW5231`` at 0.13."""
    if country == "auto":
        brazil = prefer_brazil_two_row(ocr, country)
        if _fits("br")(brazil.text.replace("?", "A")):
            return brazil
    return apply_country(ocr, country)


def _fits(country: str) -> Callable[[str], bool]:
    if country == "eu":
        return fits_europe
    fmt = _FORMATS[country]
    return lambda text: fmt.match(text) is not None


def apply_country(ocr: OcrResult, country: str, mercosur_band: bool = False) -> OcrResult:
    """Prefer candidates in ``country``'s plate format; drop a region of another country.

    Pure. With ``auto`` the result is unchanged unless the region head is sure of a country
    with strict formats (:data:`AUTO_FORMAT_REGIONS`) or of Europe (only candidates at least
    :data:`EU_FORMAT_RATIO` as likely as the top one are then preferred). Candidates keep their
    own confidences; the first one in the right format becomes the text (when it is not already).
    With ``auto`` or ``br``, a plate the head calls a Mercosur plate (:func:`is_mercosur`)
    and whose crop shows its blue band (``mercosur_band``,
    :func:`inference.plate_design.shows_mercosur_band`) is read in the Mercosur format alone
    (:func:`as_mercosur`).
    """
    if country in ("auto", "br") and mercosur_band and is_mercosur(ocr):
        strict = as_mercosur(ocr)
        if strict is not None:
            return strict
    min_ratio = 0.0
    if country == "auto":
        family = region_family(ocr.region)
        if family == "eu" and ocr.region_confidence >= EU_FORMAT_CONFIDENCE:
            min_ratio = EU_FORMAT_RATIO
        elif family not in AUTO_FORMAT_REGIONS or ocr.region_confidence < AUTO_FORMAT_CONFIDENCE:
            return ocr
        country = family
    fits = _fits(country)
    region = ocr.region
    region_conf = ocr.region_confidence
    if region_family(region) not in (None, country):
        region, region_conf = None, 0.0
    top = ocr.candidates[0].confidence if ocr.candidates else 0.0
    in_format = [c for c in ocr.candidates if fits(c.text.replace("?", "A"))]
    likely = [c for c in in_format if c.confidence >= min_ratio * top]
    if not likely and country == "eu":
        stripped = _without_band(ocr)
        if stripped is not None:
            return replace(stripped, region=region, region_confidence=region_conf)
    # The top candidate already fits: keep the read as it is (its text may show "?" for
    # uncertain characters, which the candidates spell out).
    if not likely or likely[0] == ocr.candidates[0]:
        if region == ocr.region:
            return ocr
        return replace(ocr, region=region, region_confidence=region_conf)
    best = likely[0]
    others = [c for c in ocr.candidates if c not in in_format]
    same_len = len(best.text) == len(ocr.text)
    return replace(
        ocr,
        text=best.text,
        confidence=best.confidence,
        # Per-character confidences belong to the top text; keep them only when they line up.
        char_confidences=(
            ocr.char_confidences if same_len else char_marginals(best.text, ocr.candidates)
        ),
        candidates=(best, *(c for c in in_format if c != best), *others),
        region=region,
        region_confidence=region_conf,
    )


def is_mercosur(ocr: OcrResult) -> bool:
    """Whether the region head calls ``ocr``'s plate a Mercosur plate surely enough, and the
    reader's own read is about a Mercosur plate's length (:data:`MERCOSUR_READ_LENGTHS`)."""
    lo, hi = MERCOSUR_READ_LENGTHS
    return (
        ocr.design == MERCOSUR_REGION
        and ocr.design_confidence >= MERCOSUR_CONFIDENCE
        and lo <= len(ocr.text) <= hi
    )


def as_mercosur(ocr: OcrResult) -> OcrResult | None:
    """``ocr`` read as a Brazilian Mercosur car plate (:data:`MERCOSUR_PLACES`), or None when
    it kept no probabilities or nothing fits. Pure.

    The text is the likeliest in that format however unlikely the reader made it
    (:func:`inference.ocr.in_format`): the fifth place of ``FTQ8O18`` is a letter even when the
    reader saw the digit 0 there at 0.99 (FE-Schrift's O and 0 differ by a few pixels). Every
    confidence is given the format: a candidate's probability over that of all texts that fit;
    candidates that do not fit are dropped. A character changed from the reader's top text
    carries the text's confidence (a floor on its own); the others keep theirs. The region becomes
    :data:`MERCOSUR_REGION` with the design's confidence.
    """
    found = in_format(ocr, MERCOSUR_PLACES)
    if found is None:
        return None
    best, mass = found
    if mass <= 0.0:
        return None
    others = [
        Candidate(c.text, c.confidence / mass)
        for c in ocr.candidates
        if c.text != best.text and _MERCOSUR_FORMAT.match(c.text)
    ]
    conf = min(1.0, best.confidence / mass)
    top = ocr.candidates[0].text if ocr.candidates else ""
    same = len(top) == len(best.text) == len(ocr.text) == len(ocr.char_confidences)
    chars = tuple(
        ocr.char_confidences[i] if same and top[i] == ch else conf
        for i, ch in enumerate(best.text)
    )
    # A "?" the reader showed stays where the character is still its own.
    text = "".join(
        "?" if same and top[i] == ch and ocr.text[i] == "?" else ch
        for i, ch in enumerate(best.text)
    )
    return replace(
        ocr,
        text=text,
        confidence=conf,
        char_confidences=chars,
        candidates=(Candidate(best.text, conf), *sorted(others, key=lambda c: -c.confidence)),
        plate_class="partial" if "?" in text else "full",
        region=MERCOSUR_REGION,
        region_confidence=ocr.design_confidence,
    )


def _without_band(ocr: OcrResult) -> OcrResult | None:
    """``ocr`` with the country band it read taken off its top text (``without_band``), or
    None. The band's letters lead the text, so the read's characters after them stay as read."""
    if not ocr.candidates or len(ocr.candidates[0].text) != len(ocr.text):
        return None
    top = ocr.candidates[0]
    rest = without_band(top.text)
    if rest is None:
        return None
    n = len(top.text) - len(rest)
    text = ocr.text[n:]
    plate_class = ocr.plate_class
    if plate_class == "partial" and "?" not in text:
        plate_class = "full"  # the "?" stood in the band
    return replace(
        ocr,
        text=text,
        char_confidences=ocr.char_confidences[n:],
        candidates=(replace(top, text=rest), *ocr.candidates[1:]),
        plate_class=plate_class,
    )


# A character counts as legible at this probability: the rule was measured with it, and it stays
# put when the threshold for showing "?" (inference.ocr) is moved.
LEGIBLE_CONFIDENCE = 0.5


def legible_chars(ocr: OcrResult) -> int:
    """Characters of a read the reader is at least even-odds sure of."""
    return sum(c >= LEGIBLE_CONFIDENCE for c in ocr.char_confidences)


# A text line read as a plate must look like one: this many characters, every one of them at
# least even-odds (no "?"), and no more than this many.
TEXT_PLATE_CHARS = (4, 10)


# Width over height of a photo that may be all plate: a US plate with a margin is about 2:1, a
# European one 4.7:1. Wider or squarer photos are scenes.
WHOLE_PHOTO_ASPECT = (1.5, 5.5)
# When such a photo reads as a plate whole, a plate found in it counts (and is read) only when it
# spans at least this share of the photo's width: narrower ones in a close-up are its renewal
# stickers and county names, which the detector boxes and the reader reads surely.
WHOLE_PHOTO_RIVAL_WIDTH = 0.5
# Still photos: plates the zoom-out pass finds at least this share of the photo wide are added to
# the whole-frame pass's (``DetectorSettings.close_up_width``), and a plate found at least
# WHOLE_PHOTO_RIVAL_WIDTH wide that reads like a plate makes the narrower ones its details, as
# a photo read whole does (that rule holds for every frame; camera frames rarely hold a plate so
# wide). A close-up framed squarer than a plate (the US val close-ups given a 4:3 frame)
# otherwise shows the detector only its stickers and half its registration. At 0.4, with a
# plainer check for a plate already found (IoU >= 0.5), the pass boxed again plates filling half
# a sweep frame.
CLOSE_UP_WIDTH = 0.7
PLATE_MAP_MODEL = "platemap"
# The plate map marks a plate's shrunk core (DB shrink ratio 0.4, training.platemap.targets).
# Grown back out by 1.3 x area / perimeter: its cores come out fatter than the training target,
# and 1.15 / 1.3 / 1.5 gave 88.8 / 89.4 / 88.2 % exact on the dev part's openimages scenes.
PLATE_MAP_SETTINGS = TextLineSettings(
    threshold=0.3, box_threshold=0.5, unclip_ratio=1.3, max_lines=16, min_side=1.0
)
MAP_OVERLAP_IOU = 0.2
# When the detector's and the map's boxes of a plate agree this well, the plate is reported in
# the shorter of the two, whichever read it, if that one is at least this much of the other's
# width (a narrower box is cut through the registration): :func:`reported_box`.
MAP_BOX_AGREES_IOU = 0.5
SHORTER_BOX_MIN_WIDTH = 0.7
# A plate read surely is read again in the map's box when that box is this much wider: the
# detector boxes a plate far beyond its training sizes short of its ends (a plate half a photo
# wide), and the sure read is of what the box kept.
MAP_BOX_WIDER = 1.2
# A plate whose outline rolls this many degrees or more is also read turned level, when its
# reads so far are unsure.
MIN_ROLL_DEG = 3.0
# Still photos only: frames the whole-frame pass sees at under a third of their size are also
# looked at in windows at half size, the scale the detector sees a 1280x720 frame at. 4K frames
# made of nine real dev frames (training.realscenes.mosaic, eight plates at most per frame
# lifted to sixteen): 37.6 -> 95.9 % exact, plates found 26 -> 91 %; a twelfth of the dev
# sweep read the same. Cost: nine windows more on a 4K frame (about 0.4 s here).
TILE_SCALE = 0.5
# Still photos the whole-frame pass sees at under two thirds of this (a 1280x720 one at half
# size) are also looked at in windows at this scale (``EngineSettings.native_windows``): four on
# a 720p frame. Dev third 96.2 -> 97.6 % exact, tilted dev third 94.6 -> 95.6 %, a twelfth of
# the dev sweep unchanged; at 1.0 (nine windows) the same but one tilted plate, for twice the
# windows. docs/models-detector.md.
WINDOW_SCALE = 0.8
# A plate only the native windows found is re-measured and read when the detector scored it at
# least this: on the dev third's 720p photos 186 such candidates, 5 kept as plates (all scored
# 0.65 or more), 76 scored 0.5 or more. Dev third and tilted dev third read as with every
# candidate read (0.6 lost a tilted plate); photo median 512-582 -> 385 ms (windows off: 284).
WINDOW_MIN_SCORE = 0.5
# Plates only the native windows found that are read per photo, best first.
WINDOW_MAX_PLATES = 8
# Plates read per still photo (``vigil read``, ``vigil eval``): a 4K photo of a street or a car
# park holds more plates than a camera frame of one lane (the daemon's ``max_plates``, 8).
STILL_MAX_PLATES = 16
# A plate only the map found is kept when its read reads like a whole plate at this confidence
# or more: on the dev part's openimages scenes every true one read at 0.42 or more, and a third
# of the false ones (signs, slogans, bumper stickers) below 0.4.
MAP_ONLY_MIN_CONFIDENCE = 0.4
# A plate the detector found where the map, having looked, saw none, is kept when its read has
# at least this probability: on the dev part 45 of 65 such reads under 0.05 were not plates.
DISPUTED_MIN_CONFIDENCE = 0.05
# Still photos only: a second reader, fine-tuned further on small plates compressed while small
# and on two-row plates (``training.recognizer.finetune --small-jpeg``), reads every crop
# narrower than this many frame pixels and every two-row plate's rows put side by side; the
# main reader reads the rest. Alone it read ordinary one-row plates a little worse, look-alikes
# the other way; so routed, the val / dev sweeps read 78.6 -> 80.1 % / 79.3 -> 80.3 %, two-row
# val plates 65.5 -> 75.4 % (square) / 78.9 -> 88.7 % (Mercosur), ordinary plates within one
# of ~1,200 (docs/models-ocr.md, "Small-plate reader"). Not in the daemon: memory.
SMALL_READER_MODEL = "ocr_small"
SMALL_PLATE_MAX_PX = 80


def reads_like_plate(ocr: OcrResult) -> bool:
    """Whether a read of a text line (not of a detected plate) is taken as a plate. Pure."""
    lo, hi = TEXT_PLATE_CHARS
    n = len(ocr.text)
    return lo <= n <= hi and "?" not in ocr.text and legible_chars(ocr) == n


def _mostly_inside(inner: Box, outer: Box) -> bool:
    shared = inner.intersection(outer)
    return shared > 0 and shared >= 0.5 * inner.w * inner.h


def _same_plate(a: Box, b: Box) -> bool:
    return a.iou(b) >= MAP_OVERLAP_IOU or _mostly_inside(a, b) or _mostly_inside(b, a)


def _another_read_of(o: PlateObservation, plate: PlateObservation) -> bool:
    """Whether ``o`` reads (part of) the plate ``plate`` reads: their boxes overlap by half the
    smaller one, ``plate`` reads like a whole plate, and ``o`` either reads a piece of its
    text or is a smaller box read no more surely (a sticker or slogan on it)."""
    if o is plate or not reads_like_plate(plate.ocr):
        return False
    mine, theirs = o.detection.box, plate.detection.box
    if not mine.overlaps(theirs):
        return False
    if o.ocr.text in plate.ocr.text:
        return True
    return mine.w * mine.h < theirs.w * theirs.h and o.ocr.confidence <= plate.ocr.confidence


def one_read_per_plate(observations: list[PlateObservation]) -> list[PlateObservation]:
    """One read per plate, in the order given. Pure.

    Plates do not overlap, but the passes that look for them do: the close-up pass and the
    whole-frame pass box the same plate twice (both reads reported), or the whole-frame pass
    boxes half a close-up's registration (``BNV9071`` and ``NV90``). Whole plates are kept
    first, the longer and then the surer read before the others.
    """
    ranked = sorted(
        observations,
        key=lambda o: (reads_like_plate(o.ocr), len(o.ocr.text), o.ocr.confidence),
        reverse=True,
    )
    kept: list[PlateObservation] = []
    for o in ranked:
        if not any(_another_read_of(o, k) for k in kept):
            kept.append(o)
    return [o for o in observations if any(o is k for k in kept)]


@dataclass(frozen=True)
class PlateCandidate:
    """A plate to read: its box, who found it (``detector``, ``map``, ``both`` or, on still
    photos, ``window``: the detector's windows at native pixels only), and when both did, the
    other one's box (read too; the surer read is kept)."""

    detection: Detection
    source: str
    other: Detection | None = None


def merge_mapped(found: list[Detection], mapped: list[Detection]) -> list[PlateCandidate]:
    """The plates to read: the detector's, each paired with the map's box that overlaps it
    most (both are read, the better read kept), then the map's that overlap none. Pure.

    Measured against the alternatives on the dev sets (docs/models-detector.md): the map's box
    in place of the detector's, or the map alone, lost 3-17 points on the dashcam scenes the
    detector was trained on; adding only the map's new plates gained less.
    """
    out: list[PlateCandidate] = []
    used: set[int] = set()
    for d in found:
        best, best_iou = -1, MAP_OVERLAP_IOU
        for i, m in enumerate(mapped):
            iou = d.box.iou(m.box)
            if iou >= best_iou and i not in used:
                best, best_iou = i, iou
        if best < 0:
            out.append(PlateCandidate(d, "detector"))
        else:
            used.add(best)
            out.append(PlateCandidate(d, "both", mapped[best]))
    out.extend(PlateCandidate(m, "map") for i, m in enumerate(mapped) if i not in used)
    return out


def reported_box(cand: PlateCandidate, read_in: Detection, read_more: bool) -> Detection:
    """The box a plate found by both the detector and the map is reported in, ``read_in`` the
    box its kept read came from. Pure.

    Where the two boxes agree (IoU >= :data:`MAP_BOX_AGREES_IOU`) the shorter is the better
    box, whichever read better, unless it is much narrower (:data:`SHORTER_BOX_MIN_WIDTH`): the
    taller one holds bumper or bracket above or below the plate (the map's core, grown back
    out, is fat round a plate under 30 px high; the detector's box is loose round a large one).
    On a sixth of the dev sweep, of the plates both boxed, reported in the shorter box 96.7 %
    were found at IoU >= 0.5 and 82.4 % at 0.7, against 96.3 / 77.5 % as read (the map's box
    when a sure read agreed with it, else the box of the kept read); a third of the dev part
    95.0 / 75.1 % against 93.9 / 70.5 %. A box grown to take in a second row (``read_in``
    neither of the two) stays, and so does the map's box when its read took in more of the
    plate than the detector's box had (``read_more``: a box cut short of its ends).
    """
    other = cand.other
    if other is None or read_more or not (read_in is cand.detection or read_in is other):
        return read_in
    if cand.detection.box.iou(other.box) < MAP_BOX_AGREES_IOU:
        return read_in
    short, tall = (
        (other, cand.detection) if other.box.h <= cand.detection.box.h else (cand.detection, other)
    )
    return short if short.box.w >= SHORTER_BOX_MIN_WIDTH * tall.box.w else read_in


def plate_roll(cand: PlateCandidate) -> float | None:
    """The plate's roll from the plate map's outline of it (a rotated rectangle round what it
    marked), or None when the map did not mark it. The detector's corners are not used: their
    head learnt from synthetic plates only and misjudges real rolls."""
    mapped = cand.detection if cand.source == "map" else cand.other
    if mapped is None or mapped.corners is None:
        return None
    return roll_degrees(np.asarray(mapped.corners, np.float64))


def _reads_more(alt: OcrResult, current: OcrResult) -> bool:
    """Whether ``alt`` reads the current text and more, like a whole plate: the whole of what a
    box cut short of the plate's ends read part of (European plates half a photo wide, where
    the detector's box dropped the band and the first letter and read `778NDA` at 0.98)."""
    return len(alt.text) > len(current.text) and current.text in alt.text and reads_like_plate(alt)


def _better_read(alt: OcrResult, current: OcrResult) -> bool:
    """Whether the other box's read replaces an unsure current one: surer and no shorter, or
    :func:`_reads_more`. A box cut through the registration reads its remaining characters
    confidently (close-ups of Brazilian plates, where the map's box dropped the first letters
    and read surer); the shorter text is never the better reading of the same plate."""
    surer = alt.confidence > current.confidence and len(alt.text) >= len(current.text)
    return surer or _reads_more(alt, current)


def _rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return np.repeat(frame[:, :, None], 3, axis=2)
    if frame.shape[2] == 1:
        return np.repeat(frame, 3, axis=2)
    return frame


def plate_crop(frame_rgb: np.ndarray, det: Detection, use_corners: bool = False) -> np.ndarray:
    """The crop OCR reads: the box with a margin, or with ``use_corners`` the plate warped flat
    from the detector's corners when it gave them.

    The box is the default because it reads better: on the real-scene dev part 90.9 % exact
    against 90.1 % warped, on a quarter of its sweep 68.3 % against 66.7 % (and 66.5-67.0 % when
    only plates tilted more than 5-10 degrees were warped). The corner head has learnt from
    synthetic plates only, and the reader was fine-tuned on box crops.
    """
    if use_corners and det.corners is not None:
        return rectify(frame_rgb, np.asarray(det.corners, np.float64))
    b = det.box
    box = expand_box(np.array([b.x, b.y, b.w, b.h]), BOX_MARGIN, frame_rgb.shape[:2])
    return crop_box(frame_rgb, box)


class PlateEngine(Closing):
    """Detect and read every plate in a frame. Not thread-safe: one per worker thread."""

    def __init__(
        self,
        detector: PlateDetector,
        reader: PlateReader,
        settings: EngineSettings,
        text_lines: TextLineFinder | None = None,
        plate_map: TextLineFinder | None = None,
        beside_reader: PlateReader | None = None,
        beside_detector: PlateDetector | None = None,
        small_reader: PlateReader | None = None,
    ) -> None:
        self.detector = detector
        self.reader = reader
        self.settings = settings
        self.text_lines = text_lines
        self.plate_map = plate_map
        # The plate map, and then the whole-photo read with a reader of its own
        # (``beside_reader``), run on a second thread while the detector and the reads of its
        # plates run on the caller's: each interpreter is used by one thread at a time, and a
        # second core does the other half of a still photo's work.
        self.beside_reader = beside_reader
        # The native windows (``EngineSettings.native_windows``) are looked at on that thread
        # too, after the map, with a detector of their own.
        self.beside_detector = beside_detector
        # Used on the caller's thread only, like ``reader`` (:data:`SMALL_READER_MODEL`).
        self.small_reader = small_reader
        self._beside: ThreadPoolExecutor | None = None

    @classmethod
    def load(
        cls,
        model_dir: Path | None = None,
        threads: int = 1,
        top_n: int = 10,
        country: str = "auto",
        detector_settings: DetectorSettings | None = None,
        max_plates: int = 8,
        text_fallback: bool = False,
        plate_map: bool = False,
        tiles: bool = False,
        photos: bool = False,
        small_reader: bool = False,
    ) -> PlateEngine:
        """Load both models from ``model_dir`` (default: the package's ``inference/models``).
        ``tiles``: look at frames larger than 1,920 x 1,152 in windows too
        (``DetectorSettings.tile_scale``, at :data:`TILE_SCALE`), and at smaller frames the
        detector sees shrunk in windows at native pixels (``EngineSettings.native_windows``).
        ``photos``: the frames are still photos, each read once (``vigil read``, ``vigil
        eval``), not a camera's frames that the tracker votes over: the detector also looks
        for close-ups' plates (``DetectorSettings.close_up_width``, at :data:`CLOSE_UP_WIDTH`)
        and takes each plate's second look in the whole-frame model
        (``DetectorSettings.window_refine`` off; the window model's look is cheaper and boxes
        a few plates worse, which the vote over a pass's frames absorbs).
        ``small_reader``: small plates and two-row plates' rows are read by the second reader
        (:data:`SMALL_READER_MODEL`) when ``model_dir`` holds one.

        Raises :class:`~inference.errors.ModelError` when a model is missing or corrupt, and
        ``ValueError`` for settings out of range.
        """
        settings = EngineSettings(
            country=country, top_n=top_n, max_plates=max_plates, text_fallback=text_fallback,
            plate_map=plate_map, native_windows=tiles,
        )
        d = Path(model_dir) if model_dir is not None else DEFAULT_MODEL_DIR
        if tiles:
            detector_settings = replace(
                detector_settings or DetectorSettings(), tile_scale=TILE_SCALE
            )
        if photos:
            detector_settings = replace(
                detector_settings or DetectorSettings(),
                close_up_width=CLOSE_UP_WIDTH,
                window_refine=False,
            )
        detector = PlateDetector.load(d, threads, detector_settings)
        reader: PlateReader | None = None
        text_lines: TextLineFinder | None = None
        mapper: TextLineFinder | None = None
        beside_reader: PlateReader | None = None
        beside_detector: PlateDetector | None = None
        small: PlateReader | None = None
        try:
            reader = PlateReader.load(d, threads, top_n=top_n)
            if small_reader and (d / f"{SMALL_READER_MODEL}.json").exists():
                small = PlateReader.load(d, threads, top_n=top_n, name=SMALL_READER_MODEL)
            text_lines = TextLineFinder.load(d, threads) if text_fallback else None
            if plate_map:
                mapper = TextLineFinder.load(d, threads, PLATE_MAP_SETTINGS, PLATE_MAP_MODEL)
                if text_fallback:
                    beside_reader = PlateReader.load(d, threads, top_n=top_n)
            if tiles:
                beside_detector = PlateDetector.load(d, threads, detector.settings)
        except BaseException:
            for part in (
                detector, reader, text_lines, mapper, beside_reader, beside_detector, small
            ):
                if part is not None:
                    part.close()
            raise
        log.info(
            "plate engine ready",
            extra={
                "model_dir": str(d), "threads": threads, "country": country,
                "small_reader": small is not None,
            },
        )
        return cls(
            detector, reader, settings, text_lines, mapper, beside_reader, beside_detector, small
        )

    @classmethod
    def load_still(cls, model_dir: Path | None = None, threads: int = 1) -> PlateEngine:
        """The engine as ``vigil read`` and ``vigil eval`` run it on still photos by default:
        text-line fallback, plate map, windows on large frames, the small-plate reader,
        :data:`STILL_MAX_PLATES`."""
        return cls.load(
            model_dir, threads=threads, text_fallback=True, plate_map=True, tiles=True,
            max_plates=STILL_MAX_PLATES, photos=True, small_reader=True,
        )

    def observe(self, frame_rgb: np.ndarray, frame_time_s: float = 0.0) -> FrameResult:
        """Detect and read every plate in ``frame_rgb`` (HxWx3 uint8 RGB, any size).

        Raises :class:`~inference.errors.FrameError` for a frame that is not an image.
        """
        as_grey(frame_rgb)  # validates before anything else touches the frame
        rgb = _rgb(frame_rgb)
        limit = self.settings.max_plates
        whole_on = self.settings.text_fallback and self._whole_photo_on(rgb)
        mapping: Future[list[Detection]] | None = None
        whole: Future[OcrResult] | None = None
        whole_ocr: OcrResult | None = None
        windows: Future[list[Detection]] | None = None
        try:
            if self._map_on:
                # the whole photo first: it is one read, and it says which plates need reading
                if self.beside_reader is not None and whole_on:
                    whole = self._run_beside(self._read_with, self.beside_reader, rgb)
                mapping = self._run_beside(self._mapped, rgb)
            dets = self._detect(frame_rgb)
            if whole_on:
                whole_ocr = whole.result() if whole is not None else self._read(rgb)
            plate_photo = whole_ocr is not None and reads_like_plate(whole_ocr)
            found = [
                d for d in dets
                if d.label == "plate" and not (plate_photo and self._detail(d.box, rgb))
            ]
            if self.settings.native_windows and self.beside_detector is not None:
                windows = self._run_beside(self._windowed, self.beside_detector, rgb, found)
            # The detector's plates are read while the map is still looking; only the level
            # cut needs the map's outline, and it comes after.
            first = [self._read_plate(rgb, d) for d in found[:limit]]
            mapped = mapping.result() if mapping is not None else None
            windowed = windows.result() if windows is not None else []
        except BaseException:
            # never leave the second thread working into the next frame
            pending: list[Future[Any]] = [f for f in (mapping, whole, windows) if f is not None]
            wait(pending)
            raise
        if mapped is not None:
            plates = merge_mapped(found, mapped)
        else:
            plates = [PlateCandidate(d, "detector") for d in found]
        plates += [
            PlateCandidate(w, "window")
            for w in windowed
            if not any(_same_plate(w.box, p.detection.box) for p in plates)
        ]
        if plate_photo:
            plates = [p for p in plates if not self._detail(p.detection.box, rgb)]
        vehicles = tuple(d for d in dets if d.label == "vehicle")
        observations: list[PlateObservation] = []
        map_only: list[PlateObservation] = []
        for i, cand in enumerate(plates[:limit]):
            roll = plate_roll(cand)
            best = first[i] if i < len(first) else self._read_plate(rgb, cand.detection)
            best = self._read_level(rgb, cand.detection, best, roll)
            sure = best is not None and self._sure(best.ocr)
            read_more = False
            if cand.other is not None and (
                best is None
                or not sure
                or cand.other.box.w >= MAP_BOX_WIDER * best.detection.box.w
            ):
                alt = self._read_level(rgb, cand.other, self._read_plate(rgb, cand.other), roll)
                if best is None or (
                    alt is not None
                    and (_reads_more if sure else _better_read)(alt.ocr, best.ocr)
                ):
                    read_more = best is not None and alt is not None and _reads_more(
                        alt.ocr, best.ocr
                    )
                    best = alt
            if best is None or not self._verified(best.ocr, cand.source):
                continue
            best = replace(best, detection=reported_box(cand, best.detection, read_more))
            (observations if cand.source in ("detector", "both") else map_only).append(best)
        # Plates do not nest: a line the map alone marked inside a plate already found is that
        # plate's state name, slogan or sticker (close-ups put them beyond the map's training
        # sizes, and it marks them).
        observations += [
            o for o in map_only
            if not any(_mostly_inside(o.detection.box, k.detection.box) for k in observations)
        ]
        # a photo that reads as a plate and holds no other is that plate: no lines to look at
        if (
            not observations
            and not plate_photo
            and self.text_lines is not None
            and self.settings.text_fallback
        ):
            observations = self._from_text_lines(rgb)
        if any(
            not self._detail(o.detection.box, rgb) and reads_like_plate(o.ocr)
            for o in observations
        ):
            # a close-up: what is narrower is written on that plate
            observations = [o for o in observations if not self._detail(o.detection.box, rgb)]
        observations = one_read_per_plate(observations)
        if whole_ocr is not None:
            kept = self._whole_photo(rgb, whole_ocr, observations)
            if kept is not None:
                observations = [kept]
        return FrameResult(frame_time_s, tuple(observations), vehicles)

    def _detect(self, frame_rgb: np.ndarray) -> list[Detection]:
        try:
            dets = self.detector.detect(frame_rgb)
        except ModelError:
            raise
        except (ValueError, TypeError) as e:  # numpy/OpenCV refusing a strange array
            raise FrameError(f"frame cannot be processed: {e}") from e
        return dets

    @staticmethod
    def _windowed(
        detector: PlateDetector, rgb: np.ndarray, found: list[Detection]
    ) -> list[Detection]:
        """Plates ``detector``'s windows at :data:`WINDOW_SCALE` find that ``found`` does not
        hold, re-measured, best first; none when the whole-frame pass already saw the frame near
        that scale or looked at it in windows itself."""
        seen = letterbox_scale(rgb.shape[:2], detector.input_hw)
        if not wants_windows(seen, WINDOW_SCALE) or wants_windows(
            seen, detector.settings.tile_scale
        ):
            return []
        more, _ = detector.tiled(rgb, WINDOW_SCALE)
        new = [
            d
            for d in more
            if d.score >= WINDOW_MIN_SCORE and not any(_same_plate(d.box, f.box) for f in found)
        ]
        new.sort(key=lambda d: d.score, reverse=True)
        kept: list[Detection] = []
        for d in new[:WINDOW_MAX_PLATES]:
            d = detector.refine(rgb, d)
            if not any(_same_plate(d.box, k.box) for k in kept + found):
                kept.append(d)
        return kept

    @property
    def _map_on(self) -> bool:
        return self.plate_map is not None and self.settings.plate_map

    def _read_plate(self, rgb: np.ndarray, det: Detection) -> PlateObservation | None:
        """``det``'s box read with its margin, and cut exact too when that read is unsure."""
        crop = plate_crop(rgb, det)
        if crop.shape[0] < 2 or crop.shape[1] < 2:
            return None
        ocr = self._read(crop)
        if self.settings.second_crop and not self._sure(ocr):
            crop, ocr = self._surer(rgb, det, crop, ocr)
        if self.settings.two_rows:
            ocr = self._rows(crop, ocr)
            if rows.may_be_one_row(det.box, ocr):
                det, crop, ocr = self._complete_rows(rgb, det, crop, ocr)
        return PlateObservation(det, ocr, crop)

    def _rows(self, crop: np.ndarray, ocr: OcrResult) -> OcrResult:
        """``ocr``, or the crop's two rows read as one line when it may be a two-row plate
        (``inference.rows``) and that is the better read."""
        if not rows.may_have_two_rows(crop, ocr):
            return ocr
        line = self._read_stitched(crop)
        return line if rows.rows_read_better(line, ocr) else ocr

    def _read_stitched(self, crop: np.ndarray) -> OcrResult:
        """``crop``'s two rows read side by side as one line (``inference.rows``)."""
        reader = self.small_reader if self.small_reader is not None else self.reader
        return two_row_formats(reader.read(rows.stitched(crop)), self.settings.country)

    def _complete_rows(
        self, rgb: np.ndarray, det: Detection, crop: np.ndarray, ocr: OcrResult
    ) -> tuple[Detection, np.ndarray, OcrResult]:
        """``det`` grown to take in a second row above or below it (``rows.row_completions``),
        with that crop and its stitched read, when one reads better than ``ocr``; else as
        given. The grown box is the plate's from then on (its corners, of the row, dropped)."""
        better = []
        for box in rows.row_completions(det.box, rgb.shape[:2]):
            grown = replace(det, box=box, corners=None)
            c = plate_crop(rgb, grown)
            if c.shape[0] < rows.MIN_CROP_ROWS or c.shape[1] < 2:
                continue
            line = self._read_stitched(c)
            if rows.rows_read_better(line, ocr):
                better.append((grown, c, line))
        return max(better, key=lambda b: b[2].confidence, default=(det, crop, ocr))

    def _read_level(
        self,
        rgb: np.ndarray,
        det: Detection,
        seen: PlateObservation | None,
        roll: float | None,
    ) -> PlateObservation | None:
        """``seen``, or the plate cut turned level when the map outlined it rolled and the cut
        turned reads surer."""
        if seen is None or roll is None or abs(roll) < MIN_ROLL_DEG or self._sure(seen.ocr):
            return seen
        b = det.box
        level = level_crop(rgb, np.array([b.x, b.y, b.w, b.h]), roll, BOX_MARGIN)
        crop, ocr = self._surer_of(seen.crop, seen.ocr, level)
        return PlateObservation(det, ocr, crop)

    def _sure(self, ocr: OcrResult) -> bool:
        sure = self.settings.sure_read
        return sure is not None and ocr.confidence >= sure

    def _verified(self, ocr: OcrResult, source: str) -> bool:
        """Whether a read confirms what was found as a plate: a whole, certain read for what
        only the plate map found (it also marks signs and slogans); three legible characters
        for the rest, and a read not hopeless for what the detector found and the map, having
        looked, did not."""
        if source in ("map", "window"):
            # ...and has a digit: what the map marks besides plates is words (state names,
            # slogans, dealers, shop signs), while a registration without a digit is a vanity
            # plate, rare, and the detector's to find.
            return (
                reads_like_plate(ocr)
                and ocr.confidence >= MAP_ONLY_MIN_CONFIDENCE
                and any(c.isdigit() for c in ocr.text)
            )
        if source == "detector" and self._map_on and ocr.confidence < DISPUTED_MIN_CONFIDENCE:
            return False
        return legible_chars(ocr) >= self.settings.min_legible_chars

    def _run_beside(self, job: Callable[..., _T], *args: Any) -> Future[_T]:
        if self._beside is None:
            self._beside = ThreadPoolExecutor(1, thread_name_prefix="plate-map")
        return self._beside.submit(job, *args)

    def _mapped(self, rgb: np.ndarray) -> list[Detection]:
        assert self.plate_map is not None
        out: list[Detection] = []
        for ln in self.plate_map.find(rgb):
            a, b, c, d = ln.corners[:4]
            out.append(Detection(ln.box, ln.score, "plate", (a, b, c, d)))
        return out

    def _surer(
        self, rgb: np.ndarray, det: Detection, crop: np.ndarray, ocr: OcrResult
    ) -> tuple[np.ndarray, OcrResult]:
        """The surer of two reads: the crop with its margin, and the box cut exact."""
        b = det.box
        tight = crop_box(rgb, expand_box(np.array([b.x, b.y, b.w, b.h]), (0.0, 0.0), rgb.shape[:2]))
        return self._surer_of(crop, ocr, tight)

    def _surer_of(
        self, crop: np.ndarray, ocr: OcrResult, other: np.ndarray
    ) -> tuple[np.ndarray, OcrResult]:
        """``other`` and its read when that read is surer than ``ocr``, else ``crop`` and
        ``ocr``; a cut too small to read is not read."""
        if other.shape[0] < 2 or other.shape[1] < 2:
            return crop, ocr
        again = self._read(other)
        return (other, again) if again.confidence > ocr.confidence else (crop, ocr)

    @staticmethod
    def _whole_photo_on(rgb: np.ndarray) -> bool:
        h, w = rgb.shape[:2]
        lo, hi = WHOLE_PHOTO_ASPECT
        return bool(lo <= w / h <= hi)

    @staticmethod
    def _detail(box: Box, rgb: np.ndarray) -> bool:
        """Whether ``box`` is too narrow to be the plate of a photo that reads as a plate whole,
        or that holds a plate read at least that wide (:data:`WHOLE_PHOTO_RIVAL_WIDTH`): a
        renewal sticker, county name or slogan on it."""
        return bool(box.w < WHOLE_PHOTO_RIVAL_WIDTH * rgb.shape[1])

    @staticmethod
    def _whole_photo(
        rgb: np.ndarray, ocr: OcrResult, found: list[PlateObservation]
    ) -> PlateObservation | None:
        """The photo itself as the plate (read as ``ocr``), when it has a plate's shape, reads
        like a whole plate and more surely than anything in ``found`` (the caller has already
        left out plates too narrow to be the photo's plate, :meth:`_detail`).

        A photo of a plate (a close-up, or a crop another system made) is what the reader was
        trained on, while the detector sees its registration far beyond the sizes it knows and
        boxes the stickers and slogans instead.
        """
        if not reads_like_plate(ocr) or any(o.ocr.confidence >= ocr.confidence for o in found):
            return None
        h, w = rgb.shape[:2]
        whole = Detection(Box(0.0, 0.0, float(w), float(h)), 0.0, "plate")
        return PlateObservation(whole, ocr, rgb)

    def _from_text_lines(self, rgb: np.ndarray) -> list[PlateObservation]:
        """Plates among the text detector's lines: each candidate read, kept when it reads like
        a whole plate; a line inside a kept two-row union is not read again."""
        assert self.text_lines is not None
        kept: list[PlateObservation] = []
        for box in plate_candidates(self.text_lines.find(rgb)):
            if any(_mostly_inside(box, k.detection.box) for k in kept):
                continue
            det = Detection(box, 0.0, "plate")
            crop = plate_crop(rgb, det)
            if crop.shape[0] < 2 or crop.shape[1] < 2:
                continue
            ocr = self._read(crop)
            if self.settings.two_rows:  # the lines' two-row unions (``plate_candidates``)
                ocr = self._rows(crop, ocr)
            if reads_like_plate(ocr):
                kept.append(PlateObservation(det, ocr, crop))
            if len(kept) >= self.settings.max_plates:
                break
        return kept

    def read_crop(self, crop_rgb: np.ndarray) -> OcrResult:
        """Read an already cut-out plate crop (HxWx3 uint8 RGB)."""
        return self._read(crop_rgb)

    def _read(self, crop: np.ndarray) -> OcrResult:
        reader = self.reader
        if self.small_reader is not None and crop.shape[1] < SMALL_PLATE_MAX_PX:
            reader = self.small_reader
        return self._read_with(reader, crop)

    def _read_with(self, reader: PlateReader, crop: np.ndarray) -> OcrResult:
        ocr = reader.read(crop)
        band = is_mercosur(ocr) and shows_mercosur_band(crop)
        return apply_country(ocr, self.settings.country, mercosur_band=band)

    def close(self) -> None:
        if self._beside is not None:  # its jobs use the map, the second reader and detector
            self._beside.shutdown(wait=True)
            self._beside = None
        for part in (self.detector, self.reader, self.text_lines, self.plate_map,
                     self.beside_reader, self.beside_detector, self.small_reader):
            if part is not None:
                part.close()
