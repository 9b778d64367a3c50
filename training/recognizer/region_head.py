"""Teach the reader's region head the Mercosur plate design, leaving every other weight as it is.

The region head is a linear map from the reader's time-averaged features to ``us`` / ``eu`` /
``br``. It never saw a Mercosur plate (ABC1D23, the white plate under a blue ``BRASIL`` band
issued since 2018) and calls rendered ones European two times in three, so the engine neither
re-ranks them by Brazil's formats nor knows that their fifth place is a letter. This adds a
fourth class, ``br-mercosur``, fitted on the frozen network's features of

* the fine-tuning crops (US and Brazilian crops, real-scene plates cut as the detector cuts them,
  European crops), drawn and augmented exactly as ``finetune.py`` draws them, with their regions;
* rendered one-row Mercosur plates (``finetune.rendered_crop``, FE-Schrift and the training
  faces, pasted on the real-scene dev part or on rendered backgrounds).

Only ``region_w`` / ``region_b`` change, so the characters the exported reader gives are the
ones it gave before (``graft_region_head.py`` writes the new head into the reader's file, every
other byte kept). Only the new class's column is learnt: among the old classes every crop is
called as before, and a crop changes class only when it becomes ``br-mercosur``.
Prints the held-out confusion (a second draw: other scenes' crops, Mercosur plates in the face
the reader never trained on) and writes ``<out>/finetuned.npz`` for ``graft_region_head.py``.

    PYTHONPATH=. .venv-train/bin/python -m training.recognizer.region_head \
        --weights training/work/recognizer_r/finetuned.npz \
        --heads training/work/recognizer_r/heads.npz --out training/work/recognizer_r/rh
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from inference.engine import MERCOSUR_REGION as MERCOSUR
from training.recognizer import graph
from training.recognizer.features import REGIONS, WIDTH
from training.recognizer.finetune import SHARE, draw, load_pool, rendered_crop, to_input
from training.recognizer.splits import DATASETS

TRAINER = (
    "PYTHONPATH=. .venv-train/bin/python -m training.recognizer.region_head --weights {weights} "
    "--heads {heads} --crops {crops} --mercosur {mercosur} --seed {seed} --epochs {epochs}"
)


def mercosur_crops(
    rng: np.random.Generator, scenes: list[dict], n: int, split: str
) -> np.ndarray:
    """``n`` network inputs of rendered one-row Mercosur plates (``split``: ``train`` faces, 70 %
    FE-Schrift; ``test``: the held-out face)."""
    xs = []
    while len(xs) < n:
        crop, _ = rendered_crop(rng, scenes, "mercosur", split=split)
        if min(crop.shape[:2]) >= 2:
            xs.append(to_input(crop))
    return np.stack(xs)


def features(net, x: np.ndarray, batch: int = 64) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Time-averaged features (N, 120) of network inputs ``x`` (N, 3, 48, WIDTH): what the
    region head's matrix multiplies (the head averages after it, the same by linearity)."""
    import tensorflow as tf

    run = tf.function(lambda t: tf.reduce_mean(net(t, [graph.FEATURES])[0], axis=1))
    return np.concatenate(
        [run(tf.constant(x[k : k + batch])).numpy() for k in range(0, len(x), batch)]
    )


def fit(
    f: np.ndarray, y: np.ndarray, w0: np.ndarray, b0: np.ndarray, epochs: int
) -> tuple[np.ndarray, np.ndarray]:
    """Softmax regression over len(b0) + 1 classes in which only the new class's column and
    bias are learnt; the old columns stay ``w0`` / ``b0``, so among the old classes every crop
    is called as before. Classes weighted to equal shares."""
    import tensorflow as tf

    k = w0.shape[1] + 1
    w_new = tf.Variable(np.zeros((w0.shape[0], 1), np.float32))
    b_new = tf.Variable(np.zeros(1, np.float32))
    old = tf.constant(f @ w0 + b0)
    counts = np.bincount(y, minlength=k).astype(np.float32)
    weight = tf.constant((len(y) / (k * np.maximum(counts, 1)))[y])
    ft, yt = tf.constant(f), tf.constant(y)
    opt = tf.keras.optimizers.Adam(1e-2)
    for _ in range(epochs):
        with tf.GradientTape() as tape:
            logits = tf.concat([old, ft @ w_new + b_new], axis=1)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(yt, logits)
            loss = tf.reduce_sum(ce * weight) / tf.reduce_sum(weight)
        opt.apply_gradients(zip(tape.gradient(loss, [w_new, b_new]), [w_new, b_new], strict=True))
    w = np.concatenate([w0, w_new.numpy()], axis=1)
    return w, np.concatenate([b0, b_new.numpy()])


def report(p: np.ndarray, y: np.ndarray, names: list[str], sure: float = 0.9) -> dict:
    """Per true class: how often each class is called, and called at least ``sure``."""
    out: dict[str, dict[str, object]] = {}
    for i, name in enumerate(names):
        rows = p[y == i]
        if not len(rows):
            continue
        called = rows.argmax(axis=1)
        out[name] = {
            "n": int(len(rows)),
            "called": {names[j]: int((called == j).sum()) for j in range(len(names))},
            f"called_{MERCOSUR}_at_{sure}": int(
                ((called == len(names) - 1) & (rows.max(axis=1) >= sure)).sum()
            ),
        }
    return out


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def main() -> None:
    import tensorflow as tf

    from training.recognizer.trainable import OnnxNet

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, required=True, help="finetuned.npz of the reader")
    p.add_argument("--heads", type=Path, required=True, help="heads.npz (the graph's shapes)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--crops", type=int, default=6000, help="real crops drawn to fit on")
    p.add_argument("--mercosur", type=int, default=2000, help="rendered Mercosur plates")
    p.add_argument("--epochs", type=int, default=400)
    p.add_argument("--seed", type=int, default=20261205)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data", type=Path, default=DATASETS)
    a = p.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(a.threads)

    w = np.load(a.weights, allow_pickle=False)
    meta = json.loads(str(w["meta"]))
    if list(meta["regions"]) != list(REGIONS):
        raise SystemExit(f"{a.weights} has regions {meta['regions']}, expected {list(REGIONS)}")
    h = np.load(a.heads, allow_pickle=False)
    net = OnnxNet(graph.deploy_model(WIDTH, h["char_w"], h["char_b"], h["region_w"], h["region_b"]))
    values = {k: w[k] for k in w.files if k != "meta"}
    net.assign({k: values[k] for k in net.weights()})
    names = [*REGIONS, MERCOSUR]
    pool = load_pool(a.data)

    def sample(rng: np.random.Generator, n_real: int, n_merc: int, split: str) -> tuple:
        xs, ys = [], []
        for _ in range(0, n_real, 256):
            x, _, regions = draw(rng, pool, 256, SHARE)
            keep = regions >= 0
            xs.append(x[keep])
            ys.append(regions[keep])
        xs.append(mercosur_crops(rng, pool["scene"], n_merc, split))
        ys.append(np.full(n_merc, len(REGIONS), np.int32))
        return features(net, np.concatenate(xs)), np.concatenate(ys)

    # The features of both draws are kept beside the output (keyed by what made them), so the
    # fit can be rerun (another --epochs) in seconds.
    a.out.mkdir(parents=True, exist_ok=True)
    key = f"{a.weights}:{a.crops}:{a.mercosur}:{a.seed}"
    cache = a.out / "features.npz"
    if cache.exists() and str(np.load(cache)["key"]) == key:
        c = np.load(cache)
        f, y, fh, yh = c["f"], c["y"], c["fh"], c["yh"]
    else:
        f, y = sample(np.random.default_rng(a.seed), a.crops, a.mercosur, "train")
        fh, yh = sample(np.random.default_rng(a.seed + 1), a.crops // 3, a.mercosur // 3, "test")
        np.savez(cache, key=key, f=f, y=y, fh=fh, yh=yh)
    print(f"fitting on {len(y)} crops: {np.bincount(y).tolist()} ({names})", flush=True)
    w0, b0 = values["region_w"], values["region_b"]
    before = softmax(f @ w0 + b0)
    new_w, new_b = fit(f, y, w0, b0, a.epochs)
    held = {
        "before": report(softmax(fh @ w0 + b0), yh, names),
        "after": report(softmax(fh @ new_w + new_b), yh, names),
    }
    print(json.dumps({"train_before_agree": float((before.argmax(1) == y)[y < 3].mean()),
                      "held_out": held}, indent=1), flush=True)
    values["region_w"], values["region_b"] = new_w.astype(np.float32), new_b.astype(np.float32)
    meta["regions"] = names
    meta["trainer"] = (
        f"{meta['trainer']}; region head widened to {names} by "
        + TRAINER.format(weights=a.weights, heads=a.heads, crops=a.crops, mercosur=a.mercosur,
                         seed=a.seed, epochs=a.epochs)
    )
    meta["training_data"] = [
        *(t for t in meta["training_data"] if "region head's Mercosur" not in str(t["set"])),
        {
            "set": "the region head's Mercosur class: one-row Mercosur plates (ABC1D23) rendered "
            "here (training.synth; 70% in FE-Schrift, GL-Nummernschild), pasted on the "
            "real-scene dev part or on rendered backgrounds (the characters were not trained "
            "on them)",
            "licence": "generated (fonts: see ../shared/datasets/fonts/licenses; "
            "GL-Nummernschild: unlimited permission)",
            "count": a.mercosur,
        },
    ]
    meta["region_head"] = {"held_out": held, "epochs": a.epochs}
    np.savez(a.out / "finetuned.npz", meta=json.dumps(meta), **values)
    print(f"wrote {a.out / 'finetuned.npz'}")


if __name__ == "__main__":
    main()
