"""Write the committed detector again for a smaller input: the same weights, a smaller window.

The detector is fully convolutional except for its upsampling, which the int8 export spells as
RESHAPE + TILE with constant shapes (nearest-neighbour, exact in int8). XNNPACK fixes every
shape when it takes the graph, so the interpreter cannot simply be resized: this rewrites the
input's shape, each RESHAPE's constant target and every tensor's stored shape for a smaller
input, and checks the result on the interpreter with XNNPACK.

The second look at a plate the whole-frame pass found (``DetectorSettings.refine_plate_px``:
the plate spans 120 input pixels) and the zoom-out pass (the frame shrunk to a quarter of the
input) do not need a 640x384 canvas; at half the size the same scales fit and the pass costs a
quarter (docs/models-detector.md, "The window model": the daemon runs both passes in it, still
photos the zoom-out pass only).

    PYTHONPATH=. .venv-train/bin/python -m training.detector.window_model [--size 320x192]

Writes ``inference/models/detector_window.tflite`` and ``detector_window.json``: the manifest of
``detector.json`` with the new shapes, sha256 and size, and ``labels.same_weights_as`` naming the
detector file it was made from (the runtime and the OTA model check refuse a pair that does not
match). It carries no metrics of its own: the end-to-end figures are the pair's, in
``detector.json``. Run it again after every detector export.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from inference.manifest import parse_manifest
from training.manifest_tools import tensor_specs
from training.tflite_ops import op_builtin

MODELS = Path("inference/models")
SOURCE = "detector"
NAME = "detector_window"
# The detector's coarsest feature map is the input / 32, so both sides must stay multiples of it.
COARSEST_STRIDE = 32


def rewrite(model: bytes, size_hw: tuple[int, int]) -> bytes:
    """``model`` for an input of ``size_hw`` (rows, columns; multiples of 32)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils as fu

    m = fu.convert_bytearray_to_object(bytearray(model))
    if len(m.subgraphs) != 1:
        raise ValueError(f"expected one subgraph, found {len(m.subgraphs)}")
    g = m.subgraphs[0]
    (inp,) = g.inputs
    _, h, w, c = (int(s) for s in g.tensors[inp].shape)
    nh, nw = size_hw
    if nh % COARSEST_STRIDE or nw % COARSEST_STRIDE or nh > h or nw > w:
        raise ValueError(f"{nw}x{nh} is not a multiple of {COARSEST_STRIDE} within {w}x{h}")
    # Each spatial size in a RESHAPE target is the input's rows or columns over a stride (32 to
    # 4); the two series must not share a value, or a size could not be told row from column.
    strides = [COARSEST_STRIDE >> k for k in range(4)]
    rows = {h // s: nh // s for s in strides}
    cols = {w // s: nw // s for s in strides}
    if set(rows) & set(cols):
        raise ValueError(f"input {w}x{h}: row and column sizes coincide, cannot rewrite")
    sizes = rows | cols
    small = [1, nh, nw, c]
    g.tensors[inp].shape = np.array(small, np.int32)
    g.tensors[inp].shapeSignature = None
    reshape = schema.BuiltinOperator.RESHAPE
    for op in g.operators:
        if op_builtin(m, op) != reshape:
            continue
        target = g.tensors[op.inputs[1]]
        dims = np.frombuffer(bytes(m.buffers[target.buffer].data), np.int32).copy()
        # Batch first, channels last; the spatial axes are the ones above 2 (the inserted
        # upsampling axes hold 1 or 2 and keep it).
        for i in range(1, len(dims) - 1):
            if dims[i] > 2:
                if int(dims[i]) not in sizes:
                    raise ValueError(f"RESHAPE target {dims.tolist()}: {dims[i]} is no map size")
                dims[i] = sizes[int(dims[i])]
        m.buffers[target.buffer].data = np.frombuffer(dims.tobytes(), np.uint8)
        if op.builtinOptions is not None and getattr(op.builtinOptions, "newShape", None):
            op.builtinOptions.newShape = [int(d) for d in dims]
    # Every other shape follows from the input; let the interpreter work them out (without
    # XNNPACK, which would hold the old ones) and store them.
    staged = bytes(fu.convert_object_to_bytearray(m))
    interp = Interpreter(
        model_content=staged,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interp.allocate_tensors()
    for i, t in enumerate(g.tensors):
        if m.buffers[t.buffer].data is None:  # activations; constants keep their shapes
            t.shape = np.array(interp.get_tensor_details()[i]["shape"], np.int32)
            t.shapeSignature = None
    return bytes(fu.convert_object_to_bytearray(m))


def manifest_for(source: dict[str, Any], path: Path, size: str) -> dict[str, Any]:
    """``source``'s manifest for the rewritten file at ``path`` (tensor specs read back from it,
    names and order kept: only the shapes change)."""
    out = json.loads(json.dumps(source))
    ins, outs = tensor_specs(path)
    for kind, specs in (("inputs", ins), ("outputs", outs)):
        by_name = {s["name"]: s for s in specs}
        for spec in out[kind]:
            spec["shape"] = by_name[spec["name"]]["shape"]
    ih, iw = out["inputs"][0]["shape"][1:3]
    sh, sw = source["inputs"][0]["shape"][1:3]
    out["inputs"][0]["normalisation"] = source["inputs"][0]["normalisation"].replace(
        f"{sw}x{sh}", f"{iw}x{ih}"
    )
    # The runtime refuses a window model that is not the loaded detector's (a model update
    # that replaced one and not the other).
    out["labels"]["same_weights_as"] = {"model": source["name"], "sha256": source["sha256"]}
    blob = path.read_bytes()
    out.update(
        name=NAME,
        file=path.name,
        sha256=hashlib.sha256(blob).hexdigest(),
        size_bytes=len(blob),
        metrics={},
        float_metrics={},
        note=f"the detector's weights for a {size} input, for the "
        "passes over part of a frame; the figures are those of the pair, in detector.json",
        trainer=f"{source['trainer']} && PYTHONPATH=. .venv-train/bin/python -m "
        f"training.detector.window_model --size {size}",
    )
    parse_manifest(out, source=NAME)
    return out


def check(model: bytes, small_hw: tuple[int, int]) -> None:
    """Load with the default delegates (XNNPACK) and run once on a blank input."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model, num_threads=1)
    interp.allocate_tensors()
    d = interp.get_input_details()[0]
    if tuple(d["shape"][1:3]) != small_hw:
        raise ValueError(f"rewritten input is {d['shape']}, wanted {small_hw}")
    interp.set_tensor(d["index"], np.full(d["shape"], -128, np.int8))
    interp.invoke()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="320x192", help="input columns x rows, multiples of 32")
    p.add_argument("--out", type=Path, help="folder for the two files (default: --models)")
    p.add_argument("--models", type=Path, default=MODELS)
    a = p.parse_args()
    source = json.loads((a.models / f"{SOURCE}.json").read_text())
    nw, nh = (int(v) for v in a.size.split("x"))
    out = rewrite((a.models / source["file"]).read_bytes(), (nh, nw))
    check(out, (nh, nw))
    dest = a.out or a.models
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{NAME}.tflite"
    path.write_bytes(out)
    manifest = manifest_for(source, path, a.size)
    (dest / f"{NAME}.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(f"{path}: input {manifest['inputs'][0]['shape']}, {len(out)} bytes")


if __name__ == "__main__":
    main()
