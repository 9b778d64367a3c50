"""The JSON manifest that sits beside every model file (``<name>.json`` next to ``<name>.tflite``).

The manifest is the model's contract with the code that runs it: which file, its size and
SHA-256 (so a truncated or swapped file is refused), the tensors it takes and gives with their
int8 quantisation, model-specific labels, what it was trained on under which licence, and the
held-out metrics. Parsing here is pure: :func:`parse_manifest` takes a dict;
:meth:`ModelManifest.load` adds the file read. Every problem raises
:class:`~inference.errors.ModelError` naming the file and the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference.errors import ModelError

_DTYPES = frozenset({"int8", "uint8", "float32", "int32", "int16"})


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor as the model file declares it.

    ``quantization`` is ``(scale, zero_point)``; ``(0.0, 0)`` means not quantised.
    ``normalisation`` (inputs only) says in words how float pixels are prepared before
    quantisation, e.g. ``"grayscale, x/255"``.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    quantization: tuple[float, int] = (0.0, 0)
    normalisation: str = ""

    @property
    def quantized(self) -> bool:
        return self.quantization[0] != 0.0


@dataclass(frozen=True)
class DataSource:
    set: str
    licence: str
    count: int


@dataclass(frozen=True)
class ModelManifest:
    name: str
    file: str
    sha256: str
    size_bytes: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    labels: Mapping[str, Any]
    training_data: tuple[DataSource, ...]
    licence: str
    metrics: Mapping[str, Any]
    float_metrics: Mapping[str, Any]
    created: str
    trainer: str

    @classmethod
    def load(cls, path: Path) -> ModelManifest:
        """Read and validate the manifest at ``path``."""
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError as e:
            raise ModelError(f"model manifest {path} is missing") from e
        except (OSError, UnicodeDecodeError) as e:
            raise ModelError(f"model manifest {path} cannot be read: {e}") from e
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ModelError(f"model manifest {path} is not valid JSON: {e}") from e
        return parse_manifest(data, source=str(path))

    def input(self, name: str) -> TensorSpec:
        return _by_name(self.inputs, name, self.name, "input")

    def output(self, name: str) -> TensorSpec:
        return _by_name(self.outputs, name, self.name, "output")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as :func:`parse_manifest` reads it back."""

        def spec(t: TensorSpec, with_norm: bool) -> dict[str, Any]:
            d: dict[str, Any] = {
                "name": t.name,
                "shape": list(t.shape),
                "dtype": t.dtype,
                "quantization": [t.quantization[0], t.quantization[1]],
            }
            if with_norm:
                d["normalisation"] = t.normalisation
            return d

        return {
            "name": self.name,
            "file": self.file,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "inputs": [spec(t, True) for t in self.inputs],
            "outputs": [spec(t, False) for t in self.outputs],
            "labels": dict(self.labels),
            "training_data": [
                {"set": s.set, "licence": s.licence, "count": s.count} for s in self.training_data
            ],
            "licence": self.licence,
            "metrics": dict(self.metrics),
            "float_metrics": dict(self.float_metrics),
            "created": self.created,
            "trainer": self.trainer,
        }


def _by_name(specs: tuple[TensorSpec, ...], name: str, model: str, kind: str) -> TensorSpec:
    for s in specs:
        if s.name == name:
            return s
    raise ModelError(f"model {model!r} has no {kind} named {name!r}")


class _Fields:
    """Typed field access that names the manifest and the field in every error."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, field: str, why: str) -> ModelError:
        return ModelError(f"model manifest {self.source}: field {field!r} {why}")

    def get(self, d: Mapping[str, Any], key: str, where: str = "") -> Any:
        field = f"{where}{key}"
        if key not in d:
            raise self.fail(field, "is missing")
        return d[key]

    def str_(self, d: Mapping[str, Any], key: str, where: str = "", empty_ok: bool = False) -> str:
        v = self.get(d, key, where)
        if not isinstance(v, str) or (not empty_ok and not v):
            raise self.fail(f"{where}{key}", f"must be a non-empty string, got {v!r}")
        return v

    def int_(self, d: Mapping[str, Any], key: str, where: str = "", minimum: int = 0) -> int:
        v = self.get(d, key, where)
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise self.fail(f"{where}{key}", f"must be an integer >= {minimum}, got {v!r}")
        return v

    def dict_(self, d: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any]:
        v = self.get(d, key, where)
        if not isinstance(v, dict):
            raise self.fail(f"{where}{key}", f"must be an object, got {type(v).__name__}")
        return v

    def list_(self, d: Mapping[str, Any], key: str, where: str = "", min_len: int = 0) -> list[Any]:
        v = self.get(d, key, where)
        if not isinstance(v, list) or len(v) < min_len:
            raise self.fail(f"{where}{key}", f"must be a list of at least {min_len} entries")
        return v


def _tensor(f: _Fields, d: Any, where: str, is_input: bool) -> TensorSpec:
    if not isinstance(d, dict):
        raise f.fail(where.rstrip("."), "must be an object")
    name = f.str_(d, "name", where)
    shape_raw = f.list_(d, "shape", where, min_len=1)
    if not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in shape_raw):
        raise f.fail(f"{where}shape", f"must be positive integers, got {shape_raw!r}")
    dtype = f.str_(d, "dtype", where)
    if dtype not in _DTYPES:
        raise f.fail(f"{where}dtype", f"must be one of {sorted(_DTYPES)}, got {dtype!r}")
    q = f.list_(d, "quantization", where, min_len=2)
    if (
        len(q) != 2
        or not isinstance(q[0], int | float)
        or isinstance(q[0], bool)
        or q[0] < 0
        or not isinstance(q[1], int)
        or isinstance(q[1], bool)
    ):
        raise f.fail(f"{where}quantization", f"must be [scale >= 0, zero_point int], got {q!r}")
    if dtype in ("int8", "uint8") and float(q[0]) == 0.0:
        raise f.fail(f"{where}quantization", f"an {dtype} tensor needs a non-zero scale")
    norm = f.str_(d, "normalisation", where) if is_input else ""
    return TensorSpec(
        name=name,
        shape=tuple(int(x) for x in shape_raw),
        dtype=dtype,
        quantization=(float(q[0]), int(q[1])),
        normalisation=norm,
    )


def parse_manifest(data: Any, source: str = "<manifest>") -> ModelManifest:
    """Validate a decoded manifest dict into a :class:`ModelManifest` (no I/O)."""
    f = _Fields(source)
    if not isinstance(data, dict):
        raise ModelError(f"model manifest {source}: top level must be an object")
    sha = f.str_(data, "sha256")
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise f.fail("sha256", "must be 64 lower-case hex digits")
    inputs = tuple(
        _tensor(f, t, f"inputs[{i}].", True)
        for i, t in enumerate(f.list_(data, "inputs", min_len=1))
    )
    outputs = tuple(
        _tensor(f, t, f"outputs[{i}].", False)
        for i, t in enumerate(f.list_(data, "outputs", min_len=1))
    )
    for kind, specs in (("inputs", inputs), ("outputs", outputs)):
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise f.fail(kind, f"has duplicate names {names!r}")
    sources = []
    for i, s in enumerate(f.list_(data, "training_data")):
        where = f"training_data[{i}]."
        if not isinstance(s, dict):
            raise f.fail(where.rstrip("."), "must be an object")
        sources.append(
            DataSource(
                f.str_(s, "set", where), f.str_(s, "licence", where), f.int_(s, "count", where)
            )
        )
    file = f.str_(data, "file")
    if "/" in file or "\\" in file or file.startswith("."):
        raise f.fail("file", f"must be a plain file name beside the manifest, got {file!r}")
    return ModelManifest(
        name=f.str_(data, "name"),
        file=file,
        sha256=sha,
        size_bytes=f.int_(data, "size_bytes", minimum=1),
        inputs=inputs,
        outputs=outputs,
        labels=f.dict_(data, "labels"),
        training_data=tuple(sources),
        licence=f.str_(data, "licence"),
        metrics=f.dict_(data, "metrics"),
        float_metrics=f.dict_(data, "float_metrics"),
        created=f.str_(data, "created"),
        trainer=f.str_(data, "trainer"),
    )
