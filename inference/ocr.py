"""Read a rectified plate crop: text, per-character confidences, top-N candidates, region, class.

The model (``models/ocr.tflite``, see ``docs/models-ocr.md``) is a conv-only network with a
fixed-slot head: ``slots`` positions, each a softmax over the alphabet plus a pad symbol, text
left-aligned and padded on the right. That handles two-row plates (the network sees the whole
plate) and gives a probability per character. Two small heads give the region (US state, ``eu``,
``br``) and the plate class (``full`` / ``paper``).

Everything between the crop and the :class:`~inference.records.OcrResult` is a pure function
here (:func:`preprocess`, :func:`top_n_sequences`, :func:`decode`), testable without a model.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from drivers.resource import Closing
from inference.errors import FrameError, ModelError
from inference.records import Candidate, OcrResult
from inference.runtime import TFLiteModel

log = logging.getLogger(__name__)

MODEL_NAME = "ocr"
DEFAULT_TOP_N = 10
# A character whose probability is below this is shown as "?" and the read is "partial".
DEFAULT_PARTIAL_THRESHOLD = 0.5


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

    alphabet: str  # one character per class, the pad symbol included
    pad: str
    slots: int
    regions: tuple[str, ...]
    plate_classes: tuple[str, ...]

    @property
    def pad_index(self) -> int:
        return self.alphabet.index(self.pad)

    @classmethod
    def from_manifest(cls, labels: dict[str, object], source: str) -> OcrLabels:
        try:
            alphabet = str(labels["alphabet"])
            pad = str(labels["pad"])
            slots = int(labels["slots"])  # type: ignore[call-overload]
            regions = tuple(str(r) for r in labels["regions"])  # type: ignore[attr-defined]
            classes = tuple(str(c) for c in labels["plate_classes"])  # type: ignore[attr-defined]
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"model manifest {source}: OCR labels incomplete: {e}") from e
        if len(pad) != 1 or pad not in alphabet or len(set(alphabet)) != len(alphabet):
            raise ModelError(f"model manifest {source}: labels.pad must be one alphabet symbol")
        return cls(alphabet, pad, slots, regions, classes)


def preprocess(crop_rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """HxWx3 uint8 RGB crop -> (1, height, width, 1) float32 grayscale in [0, 1].

    The whole crop is stretched to the model's size: the network was trained on plates of every
    aspect (2:1 US, 4.7:1 EU, two-row) squeezed the same way.
    """
    if not isinstance(crop_rgb, np.ndarray) or crop_rgb.dtype != np.uint8:
        raise FrameError("plate crop must be a uint8 numpy array")
    if crop_rgb.ndim in (2, 3) and (crop_rgb.shape[0] < 2 or crop_rgb.shape[1] < 2):
        raise FrameError(f"plate crop too small: {crop_rgb.shape}")
    if crop_rgb.ndim == 3 and crop_rgb.shape[2] == 3:
        gray = cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2GRAY)
    elif crop_rgb.ndim == 2:
        gray = crop_rgb
    else:
        raise FrameError(f"plate crop must be HxWx3 RGB or HxW gray, got {crop_rgb.shape}")
    h, w = gray.shape
    interp = cv2.INTER_AREA if (w > width or h > height) else cv2.INTER_LINEAR
    small = cv2.resize(gray, (width, height), interpolation=interp)
    return (small.astype(np.float32) / 255.0).reshape(1, height, width, 1)


def top_n_sequences(
    probs: np.ndarray, pad_index: int, n: int
) -> list[tuple[float, tuple[int, ...]]]:
    """The ``n`` most probable slot sequences, best first, as (log probability, class indices).

    Slots are independent softmaxes; a valid sequence is left-aligned (once a slot is pad, every
    later slot is pad), so each text has exactly one sequence. The beam ranks a prefix by its
    score plus the best valid completion of the remaining slots (an exact bound, computed
    backwards), and a sequence that reached pad is complete; keeping the ``n`` best by that
    ranking is exact, not an approximation.
    """
    if probs.ndim != 2:
        raise ValueError(f"probs must be (slots, classes), got {probs.shape}")
    if n < 1:
        raise ValueError("n must be >= 1")
    logp = np.log(np.clip(probs.astype(np.float64), 1e-12, 1.0))
    slots = logp.shape[0]
    char_logp = logp.copy()
    char_logp[:, pad_index] = -np.inf
    pad_suffix = np.concatenate([np.cumsum(logp[::-1, pad_index])[::-1], [0.0]])
    best_future = np.zeros(slots + 1)
    for i in range(slots - 1, -1, -1):
        best_future[i] = max(pad_suffix[i], float(char_logp[i].max()) + best_future[i + 1])
    k = min(n, logp.shape[1] - 1)
    # (bound, score, sequence, complete)
    beam: list[tuple[float, float, tuple[int, ...], bool]] = [(best_future[0], 0.0, (), False)]
    for i in range(slots):
        top = np.argsort(-char_logp[i])[:k]
        nxt: list[tuple[float, float, tuple[int, ...], bool]] = []
        for entry in beam:
            _, score, seq, done = entry
            if done:
                nxt.append(entry)
                continue
            full = score + float(pad_suffix[i])
            nxt.append((full, full, seq + (pad_index,) * (slots - i), True))
            for c in top:
                s2 = score + float(char_logp[i, c])
                nxt.append((s2 + float(best_future[i + 1]), s2, (*seq, int(c)), i == slots - 1))
        beam = heapq.nlargest(n, nxt, key=lambda t: t[0])
    return [(score, seq) for _, score, seq, _ in beam]


def decode(
    probs: np.ndarray,
    labels: OcrLabels,
    top_n: int = DEFAULT_TOP_N,
    partial_threshold: float = DEFAULT_PARTIAL_THRESHOLD,
    region_probs: np.ndarray | None = None,
    class_probs: np.ndarray | None = None,
) -> OcrResult:
    """Slot probabilities (slots, classes) and optional head outputs -> :class:`OcrResult`.

    ``text`` is the best sequence with every character below ``partial_threshold`` replaced by
    ``?``; ``confidence`` the best sequence's probability (product over all slots, pads included);
    ``candidates`` the top-N full texts with their probabilities. ``plate_class`` is ``partial``
    when any ``?`` is shown, else the class head's answer.
    """
    pad = labels.pad_index
    seqs = top_n_sequences(probs, pad, max(1, top_n))
    best_score, best = seqs[0]
    chars: list[str] = []
    confs: list[float] = []
    for slot, c in enumerate(best):
        if c == pad:
            break
        p = float(probs[slot, c])
        confs.append(p)
        chars.append(labels.alphabet[c] if p >= partial_threshold else "?")
    seen: set[str] = set()
    candidates: list[Candidate] = []
    for score, seq in seqs:
        text = "".join(labels.alphabet[c] for c in seq if c != pad)
        if text and text not in seen:
            seen.add(text)
            candidates.append(Candidate(text, float(np.exp(score))))
    region: str | None = None
    region_conf = 0.0
    if region_probs is not None and labels.regions:
        i = int(np.argmax(region_probs))
        region, region_conf = labels.regions[i], float(region_probs[i])
    plate_class = "full"
    if class_probs is not None and labels.plate_classes:
        plate_class = labels.plate_classes[int(np.argmax(class_probs))]
    if "?" in chars:
        plate_class = "partial"
    return OcrResult(
        text="".join(chars),
        confidence=float(np.exp(best_score)),
        char_confidences=tuple(confs),
        candidates=tuple(candidates),
        region=region,
        region_confidence=region_conf,
        plate_class=plate_class,
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
        if len(spec.shape) != 4 or spec.shape[0] != 1 or spec.shape[3] != 1:
            raise ModelError(f"OCR model input must be (1, h, w, 1), got {spec.shape}")
        self._input = spec.name
        self._hw = (spec.shape[1], spec.shape[2])
        chars = model.manifest.output("chars")
        if chars.shape[-2:] != (labels.slots, len(labels.alphabet)):
            raise ModelError(
                f"OCR output 'chars' is {chars.shape}, labels say "
                f"{labels.slots} slots x {len(labels.alphabet)} classes"
            )

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

    def read(self, crop_rgb: np.ndarray) -> OcrResult:
        """Read one rectified plate crop (HxWx3 uint8 RGB)."""
        x = preprocess(crop_rgb, *self._hw)
        out = self._model.run(**{self._input: x})
        return decode(
            out["chars"].reshape(self.labels.slots, len(self.labels.alphabet)),
            self.labels,
            self.top_n,
            self.partial_threshold,
            out["region"].reshape(-1) if "region" in out else None,
            out["plate_class"].reshape(-1) if "plate_class" in out else None,
        )

    def read_batch(self, crops: Sequence[np.ndarray]) -> list[OcrResult]:
        return [self.read(c) for c in crops]

    def close(self) -> None:
        self._model.close()
