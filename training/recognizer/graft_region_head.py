"""Put a new region head into a reader's TFLite file, leaving every other byte of the network.

Exporting a reader again from weights read back out of its file (``from_tflite.py`` ->
``export.py``) quantises the read-back weights a second time: on 600 of the val parts' engine
crops the character probabilities moved by up to 0.25 and two greedy reads changed. A new region
head (``region_head.py``) needs none of that. In the file the head is four ops on the reader's
sequence features: ``FULLY_CONNECTED`` (float32 weights, no bias) -> ``MEAN`` over the steps ->
``ADD`` (a float32 bias constant) -> ``SOFTMAX``, the model's 2-D output. This writes the new
weights and bias into those two constants, widens the four ops' output shapes to the new class
count, checks that the character output is bit for bit what the old file gives (real crops and
noise), and writes the manifest again with the new regions, hash and provenance.

The flatbuffer is read and written with the TFLite runtime's own schema bindings (no
TensorFlow needed).

    PYTHONPATH=. .venv-train/bin/python -m training.recognizer.graft_region_head \
        --model inference/models/ocr.tflite --weights training/work/recognizer_r/rh/finetuned.npz
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from training.tflite_ops import op_builtin

CHAIN = ("SOFTMAX", "ADD", "MEAN", "FULLY_CONNECTED")


def _op_names() -> dict[int, str]:
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def graft(blob: bytes, region_w: np.ndarray, region_b: np.ndarray) -> bytes:
    """``blob`` (a reader's TFLite file) with its region head's weights (features x R) and bias
    (R) replaced. Refuses a file whose head is not the four-op chain this module knows."""
    if len(blob) < 8 or blob[4:8] != b"TFL3":
        raise SystemExit("not a TFLite file")
    model = schema.ModelT.InitFromPackedBuf(bytearray(blob), 0)
    g = model.subgraphs[0]
    names = _op_names()
    made_by = {t: i for i, op in enumerate(g.operators) for t in op.outputs}
    heads = [t for t in g.outputs if len(g.tensors[t].shape) == 2]
    if len(heads) != 1:
        raise SystemExit(f"expected one 2-D (region) output, found {len(heads)}")
    chain, t = [], heads[0]
    for want in CHAIN:
        op = g.operators[made_by[t]]
        got = names.get(op_builtin(model, op))
        if got != want:
            raise SystemExit(f"region head: expected {want} making tensor {t}, found {got}")
        chain.append((op, t))
        t = op.inputs[0]
    (_, out), (add, _), (_, mean_out), (fc, fc_out) = chain
    weight, bias = g.tensors[fc.inputs[1]], g.tensors[add.inputs[1]]
    if len(fc.inputs) > 2 and fc.inputs[2] >= 0:
        raise SystemExit("region head: the FULLY_CONNECTED has a bias of its own")
    features = int(weight.shape[1])
    if region_w.shape[0] != features or region_b.shape != (region_w.shape[1],):
        raise SystemExit(f"new head {region_w.shape} / {region_b.shape}: features are {features}")
    for tensor in (weight, bias):
        users = [x for x in g.tensors if x.buffer == tensor.buffer]
        if len(users) != 1 or tensor.type != 0:  # 0: FLOAT32
            raise SystemExit(f"region head constant {tensor.name!r} is shared or not float32")
    n = region_w.shape[1]
    model.buffers[weight.buffer].data = np.frombuffer(
        np.ascontiguousarray(region_w.T, np.float32).tobytes(), np.uint8
    )
    model.buffers[bias.buffer].data = np.frombuffer(
        region_b.astype(np.float32).reshape(1, n).tobytes(), np.uint8
    )
    weight.shape = np.array([n, features], np.int32)
    bias.shape = np.array([1, n], np.int32)
    for t in (fc_out, mean_out, add.outputs[0], out):
        tensor = g.tensors[t]
        tensor.shape = np.array([*tensor.shape[:-1], n], np.int32)
        if tensor.shapeSignature is not None and len(tensor.shapeSignature):
            tensor.shapeSignature = np.array([*tensor.shapeSignature[:-1], n], np.int32)
    builder = flatbuffers.Builder(len(blob) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _outputs(path: Path, x: np.ndarray) -> dict[int, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return {len(d["shape"]): it.get_tensor(d["index"]) for d in it.get_output_details()}


def check(old: Path, new: Path, inputs: list[np.ndarray]) -> None:
    """The character output of ``new`` is ``old``'s, bit for bit, on every input."""
    for x in inputs:
        a, b = _outputs(old, x), _outputs(new, x)
        if not np.array_equal(a[3], b[3]):
            raise SystemExit("the grafted file's character output differs from the old file's")
        if not np.isclose(b[2].sum(), 1.0, atol=1e-4):
            raise SystemExit("the grafted region head's output is not a distribution")


def main() -> None:
    from inference.manifest import ModelManifest
    from inference.ocr import preprocess
    from training.manifest_tools import write_manifest
    from training.recognizer.crop_eval import SETS, crops
    from training.recognizer.splits import DATASETS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="the reader's .tflite (its .json "
                   "beside it)")
    p.add_argument("--weights", type=Path, required=True, help="npz from region_head.py")
    p.add_argument("--out", type=Path, default=None, help="folder to write to (default: in place)")
    a = p.parse_args()
    w = np.load(a.weights, allow_pickle=False)
    meta = json.loads(str(w["meta"]))
    regions = list(meta["regions"])
    name = a.model.stem
    old_manifest = json.loads(a.model.with_name(f"{name}.json").read_text())
    ModelManifest.load(a.model.with_name(f"{name}.json"))  # the old pair is whole
    out_dir = a.out or a.model.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / a.model.name
    old_blob = a.model.read_bytes()
    old_copy = out_dir / f".{name}.old.tflite"
    old_copy.write_bytes(old_blob)
    dest.write_bytes(graft(old_blob, w["region_w"], w["region_b"]))
    rng = np.random.default_rng(0)
    shape = tuple(old_manifest["inputs"][0]["shape"])
    real = [img for _, set_name in SETS for img, _ in crops(DATASETS, set_name, "val")[:20]]
    min_width = int(old_manifest["labels"]["min_width"])
    inputs = [preprocess(img, shape[1], shape[2], min_width) for img in real]
    inputs += [rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(5)]
    check(old_copy, dest, inputs)
    old_copy.unlink()
    labels = {**old_manifest["labels"], "regions": regions}
    training_data = [
        *(t for t in old_manifest["training_data"] if "region head's Mercosur" not in t["set"]),
        *(t for t in meta["training_data"] if "region head's Mercosur" in t["set"]),
    ]
    trainer = (
        f"{old_manifest['trainer']}; then its region head replaced by "
        f"training.recognizer.graft_region_head --weights {a.weights} ({meta['trainer']})"
    )
    write_manifest(
        dest,
        name,
        old_manifest["inputs"][0]["normalisation"],
        labels,
        training_data=training_data,
        licence=old_manifest["licence"],
        metrics=old_manifest["metrics"],
        float_metrics=old_manifest["float_metrics"],
        created=old_manifest["created"],
        trainer=trainer,
        output_names=lambda o: "chars" if len(o["shape"]) == 3 else "region",
    )
    print(f"wrote {dest} and its manifest: regions {regions}; characters bit for bit as before")


if __name__ == "__main__":
    main()
