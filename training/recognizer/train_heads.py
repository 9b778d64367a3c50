"""Fine-tune the plate heads on the cached features (``features.py``) of the frozen recognizer.

* Character head: a linear map from the (T, 120) sequence features to blank + 0-9 + A-Z,
  initialised from the pretrained head's rows for those symbols and trained with CTC loss (which
  tolerates any alignment, so crops need no character positions). An L2 pull towards the
  pretrained rows keeps what the upstream model learnt from millions of text lines; the data here
  are a few thousand plates.
* Region head: a linear map from the time-averaged features to ``us`` / ``eu`` / ``br``.

Writes ``training/work/recognizer/heads.npz`` for ``export.py``. Checkpoints every epoch and
resumes from the last one (rerun the same command).

    PYTHONPATH=. .venv-train/bin/python -m training.recognizer.train_heads --epochs 30
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

import numpy as np

from training.recognizer import graph
from training.recognizer.features import REGIONS, WORK

TRAINER = (
    "PYTHONPATH=. .venv-train/bin/python -m training.recognizer.features --copies 3 "
    "--scene-copies 8 --threads 1 && PYTHONPATH=. .venv-train/bin/python -m "
    "training.recognizer.features --synth 4000 && PYTHONPATH=. .venv-train/bin/python -m "
    "training.recognizer.train_heads --epochs {epochs} && PYTHONPATH=. .venv-train/bin/python "
    "-m training.recognizer.export --heads training/work/recognizer/heads.npz"
)


def encode(texts: np.ndarray, max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CTC label indices padded to ``max_len`` (default: the longest text) and their lengths."""
    max_len = max_len or max(1, max(len(t) for t in texts))
    labels = np.zeros((len(texts), max_len), np.int32)
    lengths = np.zeros(len(texts), np.int32)
    for i, t in enumerate(texts):
        idx = [graph.ALPHABET.index(c) for c in t]
        labels[i, : len(idx)] = idx
        lengths[i] = len(idx)
    return labels, lengths


def main() -> None:
    import tensorflow as tf

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--pull", type=float, default=1e-3, help="L2 weight towards pretrained rows")
    a = p.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    parts = [np.load(WORK / "features.npz")]
    if (WORK / "features_synth.npz").exists():
        parts.append(np.load(WORK / "features_synth.npz"))
    feats = np.concatenate([d["feats"] for d in parts]).astype(np.float32)
    texts = np.concatenate([d["texts"] for d in parts])
    regions = np.concatenate([d["regions"] for d in parts]).astype(np.int32)
    kinds = np.concatenate([d["kinds"] for d in parts])
    has_text = np.array([len(t) > 0 for t in texts])
    labels, lengths = encode(texts)
    base = graph.load()
    w0, b0 = graph.pretrained_plate_head(base)
    ckpt = WORK / "heads_ckpt.npz"
    start = 0
    if ckpt.exists():
        c = np.load(ckpt)
        w_init, b_init = c["char_w"], c["char_b"]
        rw_init, rb_init = c["region_w"], c["region_b"]
        start = int(c["epoch"])
        print(f"resuming after epoch {start}")
    else:
        w_init, b_init = w0, b0
        rw_init = np.zeros((feats.shape[2], len(REGIONS)), np.float32)
        rb_init = np.zeros(len(REGIONS), np.float32)
    W = tf.Variable(w_init)
    B = tf.Variable(b_init)
    RW = tf.Variable(rw_init)
    RB = tf.Variable(rb_init)
    W0, B0 = tf.constant(w0), tf.constant(b0)
    opt = tf.keras.optimizers.Adam(a.lr)

    # Regions are weighted by inverse frequency: the real-scene plates are mostly European and
    # would otherwise teach the head to answer "eu" for a US plate.
    freq = np.bincount(regions[regions >= 0], minlength=len(REGIONS)).astype(np.float32)
    region_weight = tf.constant(freq.sum() / np.maximum(freq, 1.0) / len(REGIONS))

    @tf.function
    def step(x, y, ylen, text_mask, reg, reg_mask):  # type: ignore[no-untyped-def]
        with tf.GradientTape() as tape:
            logits = tf.einsum("btc,ck->btk", x, W) + B
            steps = tf.fill([tf.shape(x)[0]], tf.shape(x)[1])
            ctc = tf.nn.ctc_loss(y, logits, ylen, steps, logits_time_major=False, blank_index=0)
            ctc = tf.reduce_sum(ctc * text_mask) / tf.maximum(tf.reduce_sum(text_mask), 1.0)
            rlogits = tf.reduce_mean(x, axis=1) @ RW + RB
            rce = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.maximum(reg, 0), rlogits)
            rmask = reg_mask * tf.gather(region_weight, tf.maximum(reg, 0))
            rce = tf.reduce_sum(rce * rmask) / tf.maximum(tf.reduce_sum(rmask), 1.0)
            pull = tf.reduce_sum(tf.square(W - W0)) + tf.reduce_sum(tf.square(B - B0))
            loss = ctc + rce + a.pull * pull
        grads = tape.gradient(loss, [W, B, RW, RB])
        opt.apply_gradients(zip(grads, [W, B, RW, RB], strict=True))
        return ctc, rce

    rng = np.random.default_rng(start)
    n = len(feats)
    for epoch in range(start, a.epochs):
        order = rng.permutation(n)
        tot_ctc = tot_rce = 0.0
        batches = 0
        for k in range(0, n, a.batch):
            i = order[k : k + a.batch]
            ctc, rce = step(
                tf.constant(feats[i]),
                tf.constant(labels[i]),
                tf.constant(lengths[i]),
                tf.constant(has_text[i].astype(np.float32)),
                tf.constant(regions[i]),
                tf.constant((regions[i] >= 0).astype(np.float32)),
            )
            tot_ctc += float(ctc)
            tot_rce += float(rce)
            batches += 1
        print(
            f"epoch {epoch + 1}: ctc {tot_ctc / batches:.4f} region {tot_rce / batches:.4f}",
            flush=True,
        )
        np.savez(
            ckpt,
            char_w=W.numpy(),
            char_b=B.numpy(),
            region_w=RW.numpy(),
            region_b=RB.numpy(),
            epoch=epoch + 1,
        )
    counts = Counter(str(k) for k in kinds)
    meta = {
        "regions": list(REGIONS),
        "trainer": TRAINER.format(epochs=a.epochs),
        "training_data": [
            {
                "set": "us-plate-photos (train split by plate text), crops x3 augmented",
                "licence": "AGPL-3.0",
                "count": int(np.sum((regions == 0) & has_text)),
            },
            {
                "set": "openalpr-traindetector-br-crops (with text, train split), x3 augmented",
                "licence": "AGPL-3.0",
                "count": int(np.sum((regions == 2) & has_text)),
            },
            {
                "set": "openalpr-traindetector-eu-crops (region only), x3 augmented",
                "licence": "AGPL-3.0",
                "count": int(np.sum((regions == 1) & ~has_text & (kinds == "crop"))),
            },
            {
                "set": "real-scene dev part (training/realscenes; romanian-lp-robertlucian MIT, "
                "openimages CC BY 2.0), re-cut with detector-like boxes x8",
                "licence": "MIT / CC BY 2.0",
                "count": int(counts.get("scene", 0)),
            },
        ],
    }
    np.savez(
        WORK / "heads.npz",
        char_w=W.numpy(),
        char_b=B.numpy(),
        region_w=RW.numpy(),
        region_b=RB.numpy(),
        meta=json.dumps(meta),
    )
    print(f"wrote {WORK / 'heads.npz'}")


if __name__ == "__main__":
    main()
