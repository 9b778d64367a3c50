"""Load and run a TFLite model checked against its manifest.

:class:`TFLiteModel` is the one place the reading stack touches the TFLite interpreter. It refuses
a model whose file is missing, truncated, swapped (size / SHA-256) or whose tensors differ from
the manifest, with a :class:`~inference.errors.ModelError` that says which. Callers pass and get
float32 arrays; int8 quantisation is done here from the model's own parameters. Outputs are
returned keyed by the manifest's output names, found through the model's signature (the converter
may reorder output tensors), else by a unique tensor name or shape.

The interpreter is ``ai_edge_litert`` (XNNPACK on by default), with ``tflite_runtime`` as a
fallback import for images that still ship it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from drivers.resource import Closing
from inference import file_pages
from inference.errors import ModelError
from inference.manifest import ModelManifest, TensorSpec

log = logging.getLogger(__name__)

_NP_DTYPES: dict[str, Any] = {
    "int8": np.int8,
    "uint8": np.uint8,
    "float32": np.float32,
    "int32": np.int32,
    "int16": np.int16,
}


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-untyped]
    except ImportError:
        try:
            from tflite_runtime.interpreter import (  # type: ignore[import-not-found,no-redef,unused-ignore]
                Interpreter,
            )
        except ImportError as e:
            raise ModelError(
                "no TFLite interpreter installed (need ai-edge-litert or tflite-runtime)"
            ) from e
        log.warning("ai_edge_litert missing, using tflite_runtime", extra={"runtime": "tflite"})
    return Interpreter


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def quantize(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """float32 -> the tensor's integer dtype using its (scale, zero_point), rounded and clipped."""
    scale, zero = spec.quantization
    dtype = _NP_DTYPES[spec.dtype]
    info = np.iinfo(dtype)
    q = np.round(np.asarray(x, dtype=np.float32) / scale) + zero
    out: np.ndarray = np.clip(q, info.min, info.max).astype(dtype)
    return out


def dequantize(q: np.ndarray, spec: TensorSpec) -> np.ndarray:
    scale, zero = spec.quantization
    return ((q.astype(np.float32) - zero) * scale).astype(np.float32)


def _same_quant(a: tuple[float, int], b: tuple[float, int]) -> bool:
    if a[0] == 0.0 or b[0] == 0.0:
        return a[0] == b[0]
    return abs(a[0] - b[0]) <= 1e-6 * max(abs(a[0]), abs(b[0])) and a[1] == b[1]


class TFLiteModel(Closing):
    """A verified, allocated TFLite interpreter. Not thread-safe: one per worker thread."""

    def __init__(
        self,
        manifest: ModelManifest,
        interpreter: Any,
        input_index: dict[str, int],
        output_index: dict[str, int],
        path: Path,
    ) -> None:
        self.manifest = manifest
        self.path = path
        self._interp: Any = interpreter
        self._in = input_index
        self._out = output_index
        self._pages_released = False

    @classmethod
    def load(cls, model_dir: Path, name: str, threads: int = 1) -> TFLiteModel:
        """Load ``model_dir/<name>.json`` and the model file it names; verify both.

        ``threads`` is the interpreter's CPU thread count (1 keeps the camera pipeline's other
        threads fed on a 4-core Pi).
        """
        if threads < 1:
            raise ModelError(f"threads must be >= 1, got {threads}")
        manifest = ModelManifest.load(model_dir / f"{name}.json")
        path = model_dir / manifest.file
        if not path.is_file():
            raise ModelError(f"model file {path} is missing (named by {name}.json)")
        size = path.stat().st_size
        if size != manifest.size_bytes:
            raise ModelError(
                f"model file {path} is {size} bytes, manifest says {manifest.size_bytes}"
                " (truncated or replaced)"
            )
        digest = sha256_file(path)
        if digest != manifest.sha256:
            raise ModelError(f"model file {path} SHA-256 {digest} does not match its manifest")
        interpreter_cls = _interpreter_class()
        try:
            interp = interpreter_cls(model_path=str(path), num_threads=threads)
            interp.allocate_tensors()
        except Exception as e:  # the interpreter raises bare ValueError/RuntimeError on bad files
            raise ModelError(f"model file {path} cannot be loaded: {e}") from e
        in_idx = _match(manifest.inputs, interp, "inputs", path)
        out_idx = _match(manifest.outputs, interp, "outputs", path)
        log.info(
            "model loaded",
            extra={"model": manifest.name, "model_bytes": size, "threads": threads},
        )
        return cls(manifest, interp, in_idx, out_idx, path)

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self.manifest.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.manifest.outputs

    def run(self, *args: np.ndarray, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Run once. Pass one array positionally for a single-input model, else by input name.

        float arrays are quantised with the input's parameters; an array already in the tensor's
        integer dtype is passed through. Returns float32 (dequantised) arrays by output name.
        """
        if self._interp is None:
            raise ModelError(f"model {self.manifest.name!r} is closed")
        if args:
            if inputs or len(args) != 1 or len(self.manifest.inputs) != 1:
                raise ModelError("pass a single positional array only to a single-input model")
            inputs = {self.manifest.inputs[0].name: args[0]}
        if set(inputs) != {s.name for s in self.manifest.inputs}:
            raise ModelError(
                f"model {self.manifest.name!r} takes inputs "
                f"{[s.name for s in self.manifest.inputs]}, got {sorted(inputs)}"
            )
        for spec in self.manifest.inputs:
            x = np.asarray(inputs[spec.name])
            if x.shape != spec.shape:
                if x.size != int(np.prod(spec.shape)):
                    raise ModelError(f"input {spec.name!r} needs shape {spec.shape}, got {x.shape}")
                x = x.reshape(spec.shape)
            want = _NP_DTYPES[spec.dtype]
            if x.dtype != want:
                if spec.quantized and np.issubdtype(x.dtype, np.floating):
                    x = quantize(x, spec)
                else:
                    x = x.astype(want)
            self._interp.set_tensor(self._in[spec.name], x)
        self._interp.invoke()
        if not self._pages_released:
            # XNNPACK has packed the weights on this first run; the file's pages are dead.
            self._pages_released = True
            file_pages.release(self.path)
        out: dict[str, np.ndarray] = {}
        for spec in self.manifest.outputs:
            y = self._interp.get_tensor(self._out[spec.name])
            out[spec.name] = dequantize(y, spec) if spec.quantized else np.array(y)
        return out

    def close(self) -> None:
        self._interp = None


def _signature_indices(interp: Any, kind: str) -> dict[str, int]:
    try:
        sigs: Mapping[str, Any] = interp.get_signature_list()
        if len(sigs) != 1:
            return {}
        runner = interp.get_signature_runner(next(iter(sigs)))
        details = runner.get_input_details() if kind == "inputs" else runner.get_output_details()
        return {k: int(v["index"]) for k, v in details.items()}
    except Exception:  # noqa: BLE001 - models without signatures, runtimes without the API
        return {}


def _match(specs: tuple[TensorSpec, ...], interp: Any, kind: str, path: Path) -> dict[str, int]:
    """Map each manifest tensor to an interpreter tensor index and check shape, dtype, quant."""
    details = interp.get_input_details() if kind == "inputs" else interp.get_output_details()
    by_index = {int(d["index"]): d for d in details}
    if len(details) != len(specs):
        raise ModelError(
            f"model file {path} has {len(details)} {kind}, manifest declares {len(specs)}"
        )
    sig = _signature_indices(interp, kind)
    taken: set[int] = set()
    result: dict[str, int] = {}
    for spec in specs:
        idx: int | None = sig.get(spec.name)
        if idx is None:
            named = [i for i, d in by_index.items() if d["name"] == spec.name]
            if len(named) == 1:
                idx = named[0]
        if idx is None:
            same = [
                i
                for i, d in by_index.items()
                if i not in taken and tuple(int(s) for s in d["shape"]) == spec.shape
            ]
            if len(same) != 1:
                raise ModelError(
                    f"model file {path}: cannot find {kind[:-1]} {spec.name!r} by signature, "
                    f"name or unique shape {spec.shape}"
                )
            idx = same[0]
        d = by_index.get(idx)
        if d is None or idx in taken:
            raise ModelError(f"model file {path}: {kind[:-1]} {spec.name!r} maps to no tensor")
        taken.add(idx)
        shape = tuple(int(s) for s in d["shape"])
        dtype = np.dtype(d["dtype"]).name
        quant = (float(d["quantization"][0]), int(d["quantization"][1]))
        if shape != spec.shape or dtype != spec.dtype or not _same_quant(quant, spec.quantization):
            raise ModelError(
                f"model file {path}: {kind[:-1]} {spec.name!r} is {shape} {dtype} q={quant}, "
                f"manifest says {spec.shape} {spec.dtype} q={spec.quantization}"
            )
        result[spec.name] = idx
    return result
