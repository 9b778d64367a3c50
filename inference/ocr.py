"""Read a rectified plate crop: text, per-character confidences, top-N candidates, region.

The model (``models/ocr.tflite``, see ``docs/models-ocr.md``) is PP-OCRv4's pretrained text
recognizer (a PPLCNetV3 backbone, an SVTR neck and a CTC head) with its head narrowed to plate
characters and fine-tuned on plates here: per horizontal step a softmax over blank + 0-9 + A-Z,
decoded by CTC (``inference.ctc``), so the text may sit anywhere in the crop and be any length.
A small head on the time-averaged features gives the region (a hint, never a match key).

Everything between the crop and the :class:`~inference.records.OcrResult` is a pure function
here (:func:`preprocess`, :func:`decode`), testable without a model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from drivers.resource import Closing
from inference.ctc import best_in_format, best_path, format_probability, prefix_beam_search
from inference.errors import FrameError, ModelError
from inference.records import Candidate, OcrResult, StepProbs
from inference.runtime import TFLiteModel

log = logging.getLogger(__name__)

MODEL_NAME = "ocr"
DEFAULT_TOP_N = 10
# A character whose probability is below this is shown as "?" and the read is "partial". 0.3,
# not 0.5: on a quarter of the dev part's sweep, 0.5 / 0.3 / 0 gave 65.4 / 66.8 / 67.2 % exact
# reads; below 0.3 the best guess is wrong often enough that "?" (a wildcard for the hotlist
# matcher, whose candidates still spell every character out) is the honest answer.
DEFAULT_PARTIAL_THRESHOLD = 0.3


@dataclass(frozen=True)
class OcrSettings:
    """Reader settings (config section ``[ocr]``; validated here and by firmware's config).

    ``threads``: interpreter CPU threads, 1-4. ``top_n``: candidates kept, 1-50.
    ``partial_threshold``: a character below this probability is shown as ``?``, 0-1.
    """

    threads: int = 1
    top_n: int = DEFAULT_TOP_N
    partial_threshold: float = DEFAULT_PARTIAL_THRESHOLD

    def __post_init__(self) -> None:
        if not 1 <= self.threads <= 4:
            raise ValueError(f"ocr.threads must be 1..4, got {self.threads}")
        if not 1 <= self.top_n <= 50:
            raise ValueError(f"ocr.top_n must be 1..50, got {self.top_n}")
        if not 0.0 <= self.partial_threshold <= 1.0:
            raise ValueError(f"ocr.partial_threshold must be 0..1, got {self.partial_threshold}")


@dataclass(frozen=True)
class OcrLabels:
    """What the model's outputs mean, read from the manifest's ``labels``."""

    alphabet: str  # one character per class, the CTC blank included
    blank: str
    regions: tuple[str, ...]
    min_width: int = 0  # crops are stretched to at least this many input columns
    # Softmax temperature fitted on held-out crops (training/recognizer/calibrate.py) so that
    # confidences mean what they say; 1.0 leaves the model's probabilities as they are.
    temperature: float = 1.0

    @property
    def blank_index(self) -> int:
        return self.alphabet.index(self.blank)

    @classmethod
    def from_manifest(cls, labels: dict[str, object], source: str) -> OcrLabels:
        try:
            if labels.get("decoder") != "ctc":
                raise ValueError(f"decoder must be 'ctc', got {labels.get('decoder')!r}")
            alphabet = str(labels["alphabet"])
            blank = str(labels["blank"])
            regions = tuple(str(r) for r in labels.get("regions", ()))  # type: ignore[attr-defined]
            min_width = int(labels.get("min_width", 0))  # type: ignore[call-overload]
            temperature = float(labels.get("temperature", 1.0))  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"model manifest {source}: OCR labels incomplete: {e}") from e
        if len(blank) != 1 or blank not in alphabet or len(set(alphabet)) != len(alphabet):
            raise ModelError(f"model manifest {source}: labels.blank must be one alphabet symbol")
        if not 0.1 <= temperature <= 10.0:  # also refuses NaN
            raise ModelError(f"model manifest {source}: labels.temperature must be 0.1..10")
        return cls(alphabet, blank, regions, min_width, temperature)


def tempered(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Per-step probabilities with their logits divided by ``temperature`` (rows sum to 1)."""
    if temperature == 1.0:
        return probs
    logits = np.log(np.maximum(probs, 1e-12)) / temperature
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return out


def preprocess(
    crop_rgb: np.ndarray, height: int, width: int, min_width: int = 0
) -> np.ndarray:
    """HxWx3 uint8 RGB crop -> (1, height, width, 3) float32 in [-1, 1], BGR order.

    As the pretrained recognizer was trained: the crop is scaled to ``height`` rows keeping its
    aspect ratio (squeezed when it would be wider than ``width``), scaled to [-1, 1], and the rest
    of the row is zero padding on the right. BGR because its training images were read by OpenCV.
    A plate narrower than ``min_width`` is stretched to it: a 2:1 US plate would otherwise span
    12 of the 30 CTC steps, too few to separate 7 characters and their doubled letters.
    """
    if not isinstance(crop_rgb, np.ndarray) or crop_rgb.dtype != np.uint8:
        raise FrameError("plate crop must be a uint8 numpy array")
    if crop_rgb.ndim in (2, 3) and (crop_rgb.shape[0] < 2 or crop_rgb.shape[1] < 2):
        raise FrameError(f"plate crop too small: {crop_rgb.shape}")
    if crop_rgb.ndim == 2:
        crop_rgb = np.repeat(crop_rgb[:, :, None], 3, axis=2)
    elif crop_rgb.ndim != 3 or crop_rgb.shape[2] != 3:
        raise FrameError(f"plate crop must be HxWx3 RGB or HxW gray, got {crop_rgb.shape}")
    h, w = crop_rgb.shape[:2]
    new_w = int(min(width, max(8, min_width, np.ceil(height * w / h))))
    interp = cv2.INTER_AREA if h > height else cv2.INTER_LINEAR
    # Channels are resized independently, so turning RGB into BGR after the resize gives the
    # same pixels; turned first, a whole 720p photo cost a 4 ms strided copy.
    small = cv2.resize(np.ascontiguousarray(crop_rgb), (new_w, height), interpolation=interp)
    out = np.zeros((1, height, width, 3), np.float32)
    out[0, :, :new_w] = small[:, :, ::-1].astype(np.float32) / 127.5 - 1.0
    return out


def decode(
    probs: np.ndarray,
    labels: OcrLabels,
    top_n: int = DEFAULT_TOP_N,
    partial_threshold: float = DEFAULT_PARTIAL_THRESHOLD,
    region_probs: np.ndarray | None = None,
) -> OcrResult:
    """Per-step probabilities (steps, classes) and an optional region head -> :class:`OcrResult`.

    ``candidates`` are the top-N texts of a CTC prefix beam search with their probabilities;
    ``text`` is the first of them with every character whose probability (its best step on the
    greedy path) is below ``partial_threshold`` shown as ``?``; ``confidence`` its probability.
    ``plate_class`` is ``partial`` when any ``?`` is shown, else ``full``.
    """
    blank = labels.blank_index
    probs = tempered(probs, labels.temperature)
    beams = prefix_beam_search(probs, blank, max(1, top_n))
    greedy, greedy_confs = best_path(probs, blank)
    seen: set[str] = set()
    candidates: list[Candidate] = []
    for p, seq in beams:
        text = "".join(labels.alphabet[c] for c in seq)
        if text and text not in seen:
            seen.add(text)
            candidates.append(Candidate(text, float(p)))
    best_text = candidates[0].text if candidates else ""
    if "".join(labels.alphabet[c] for c in greedy) == best_text:
        confs = greedy_confs
    else:  # the beam's best differs from the greedy path: no per-step alignment to show
        confs = char_marginals(best_text, candidates)
    chars = [c if p >= partial_threshold else "?" for c, p in zip(best_text, confs, strict=True)]
    region, region_conf, design, design_conf = region_and_design(region_probs, labels.regions)
    return OcrResult(
        text="".join(chars),
        confidence=candidates[0].confidence if candidates else 0.0,
        char_confidences=tuple(confs),
        candidates=tuple(candidates),
        region=region,
        region_confidence=region_conf,
        plate_class="partial" if "?" in chars else "full",
        steps=StepProbs(np.asarray(probs, np.float32), labels.alphabet, blank),
        design=design,
        design_confidence=design_conf,
    )


def region_and_design(
    probs: np.ndarray | None, names: Sequence[str]
) -> tuple[str | None, float, str | None, float]:
    """(region, its confidence, design, its confidence) from the region head's softmax.

    Classes named ``<region>-<design>`` (``br-mercosur``) are plate designs within a region,
    added to a head whose other columns were kept (``training.recognizer.region_head``). The
    region is read over the other classes alone, their probabilities renormalised, which gives
    exactly what the head gave before the design was added; the design is the likeliest design
    class with its probability over every class."""
    if probs is None or not names:
        return None, 0.0, None, 0.0
    p = np.asarray(probs, np.float64)
    regions = [i for i, n in enumerate(names) if "-" not in n]
    designs = [i for i, n in enumerate(names) if "-" in n]
    region: str | None = None
    region_conf = 0.0
    if regions:
        mass = float(p[regions].sum())
        i = max(regions, key=lambda k: p[k])
        region, region_conf = names[i], float(p[i] / mass) if mass > 0 else 0.0
    if not designs:
        return region, region_conf, None, 0.0
    j = max(designs, key=lambda k: p[k])
    return region, region_conf, names[j], float(p[j])


def in_format(ocr: OcrResult, places: Sequence[str]) -> tuple[Candidate, float] | None:
    """The likeliest text the reader's probabilities give with exactly one character per place,
    each from its place's characters (``places[i]``, e.g. ``"0123456789"``), with its
    probability, and the probability of all texts that fit; None when ``ocr`` kept no
    probabilities or no text fits. Pure.

    Unlike choosing among ``ocr.candidates``, this finds a format's reading however far down the
    reader put it: a digit read at 0.99 where the format has a letter becomes the likeliest
    letter there (:func:`inference.ctc.best_in_format`)."""
    steps = ocr.steps
    if steps is None:
        return None
    index = {ch: i for i, ch in enumerate(steps.alphabet) if i != steps.blank}
    allowed = [[index[ch] for ch in place if ch in index] for place in places]
    found = best_in_format(steps.probs, allowed, steps.blank)
    if found is None:
        return None
    p, symbols = found
    text = "".join(steps.alphabet[c] for c in symbols)
    return Candidate(text, p), format_probability(steps.probs, allowed, steps.blank)


def char_marginals(text: str, candidates: Sequence[Candidate]) -> tuple[float, ...]:
    """Each character's share of the candidates' probability: the mass of the candidates of
    ``text``'s length that have that character there, over the mass of all of them.

    Used when the best text is not the greedy path, so no step lines up with a character. The
    whole-text probability it replaces is a product over characters: one doubtful character made
    every other one look illegible (a clear US plate whose H/M was in doubt read ``???????``).
    """
    total = sum(c.confidence for c in candidates)
    if not text or total <= 0:
        return (0.0,) * len(text)
    same = [c for c in candidates if len(c.text) == len(text)]
    return tuple(
        sum(c.confidence for c in same if c.text[i] == ch) / total for i, ch in enumerate(text)
    )


class PlateReader(Closing):
    """Reads plate crops with the committed OCR model. One per thread (the interpreter is not
    thread-safe)."""

    def __init__(
        self,
        model: TFLiteModel,
        labels: OcrLabels,
        top_n: int = DEFAULT_TOP_N,
        partial_threshold: float = DEFAULT_PARTIAL_THRESHOLD,
    ) -> None:
        self._model = model
        self.labels = labels
        self.top_n = top_n
        self.partial_threshold = partial_threshold
        spec = model.manifest.inputs[0]
        if len(spec.shape) != 4 or spec.shape[0] != 1 or spec.shape[3] != 3:
            raise ModelError(f"OCR model input must be (1, h, w, 3), got {spec.shape}")
        self._input = spec.name
        self._hw = (spec.shape[1], spec.shape[2])
        chars = model.manifest.output("chars")
        if len(chars.shape) != 3 or chars.shape[-1] != len(labels.alphabet):
            raise ModelError(
                f"OCR output 'chars' is {chars.shape}, labels say "
                f"(1, steps, {len(labels.alphabet)} classes)"
            )
        self._steps = chars.shape[1]

    @classmethod
    def load(
        cls,
        model_dir: Path,
        threads: int = 1,
        top_n: int = DEFAULT_TOP_N,
        partial_threshold: float = DEFAULT_PARTIAL_THRESHOLD,
        name: str = MODEL_NAME,
    ) -> PlateReader:
        """Load ``model_dir/<name>.json`` + its model and check the OCR labels fit its outputs."""
        OcrSettings(threads, top_n, partial_threshold)  # same ranges as the config
        model = TFLiteModel.load(model_dir, name, threads=threads)
        try:
            labels = OcrLabels.from_manifest(dict(model.manifest.labels), str(model.path))
            return cls(model, labels, top_n, partial_threshold)
        except Exception:
            model.close()
            raise

    @classmethod
    def from_settings(cls, model_dir: Path, settings: OcrSettings) -> PlateReader:
        return cls.load(model_dir, settings.threads, settings.top_n, settings.partial_threshold)

    @property
    def input_hw(self) -> tuple[int, int]:
        return self._hw

    def step_probs(self, crop_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The model's raw outputs for one crop: (steps, classes) and the region head's."""
        x = preprocess(crop_rgb, *self._hw, self.labels.min_width)
        out = self._model.run(**{self._input: x})
        chars = out["chars"].reshape(self._steps, len(self.labels.alphabet))
        return chars, (out["region"].reshape(-1) if "region" in out else None)

    def read(self, crop_rgb: np.ndarray) -> OcrResult:
        """Read one rectified plate crop (HxWx3 uint8 RGB)."""
        chars, region = self.step_probs(crop_rgb)
        return decode(chars, self.labels, self.top_n, self.partial_threshold, region)

    def read_batch(self, crops: Sequence[np.ndarray]) -> list[OcrResult]:
        return [self.read(c) for c in crops]

    def close(self) -> None:
        self._model.close()
