"""Write the manifest (``<name>.json``) for an exported ``.tflite`` file.

Tensor specs are read back from the converted file itself, so the manifest always matches what
the converter produced (names from the signature, shapes, dtypes, quantisation).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from inference.manifest import parse_manifest


def tensor_specs(tflite_path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    interp = Interpreter(model_path=str(tflite_path))
    interp.allocate_tensors()
    sigs = interp.get_signature_list()
    runner = interp.get_signature_runner(next(iter(sigs)))

    def spec(name: str, d: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "shape": [int(s) for s in d["shape"]],
            "dtype": np.dtype(d["dtype"]).name,
            "quantization": [float(d["quantization"][0]), int(d["quantization"][1])],
        }

    ins = [spec(k, v) for k, v in sorted(runner.get_input_details().items())]
    outs = [spec(k, v) for k, v in sorted(runner.get_output_details().items())]
    return ins, outs


def write_manifest(
    tflite_path: Path,
    name: str,
    normalisation: str,
    labels: Mapping[str, Any],
    training_data: list[dict[str, Any]],
    licence: str,
    metrics: Mapping[str, Any],
    float_metrics: Mapping[str, Any],
    created: str,
    trainer: str,
    output_names: Callable[[dict[str, Any]], str] | None = None,
) -> Path:
    """``output_names`` renames outputs (given their spec) where the converter's signature
    names say nothing (onnx2tf writes ``output_0``...); the runtime then finds them by shape."""
    ins, outs = tensor_specs(tflite_path)
    if output_names is not None:
        for o in outs:
            o["name"] = output_names(o)
    for i in ins:
        i["normalisation"] = normalisation
    blob = tflite_path.read_bytes()
    data = {
        "name": name,
        "file": tflite_path.name,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "size_bytes": len(blob),
        "inputs": ins,
        "outputs": outs,
        "labels": dict(labels),
        "training_data": training_data,
        "licence": licence,
        "metrics": dict(metrics),
        "float_metrics": dict(float_metrics),
        "created": created,
        "trainer": trainer,
    }
    parse_manifest(data, source=name)  # refuse to write a manifest the runtime would refuse
    out = tflite_path.with_name(f"{name}.json")
    out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return out
