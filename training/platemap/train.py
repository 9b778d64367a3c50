"""Fine-tune PP-OCRv4's DB text detector to mark whole licence plates (the "plate map").

The plate detector trained here from scratch on a few hundred scenes finds plates in scenes like
them and misses many elsewhere (42 % of the openimages test photos' plates). PP-OCRv4's text
detector (``rapidocr-onnxruntime`` wheel, Apache-2.0) has learnt text in every kind of photo; a
plate is a block of text, so its features already respond to registrations anywhere. This
trains the whole network (1.17 M weights, run node by node from the ONNX graph by
:class:`training.recognizer.trainable.OnnxNet`) to put a probability map on each plate's shrunk
core (``targets.py``) and on nothing else: not signs, stickers, slogans or dealer frames.

Data: the detector's training scenes (the held-out test split is never seen), at the run-time
scale of a 640x384 input, with synthetic and real plate photos pasted in with perspective
(``training.detector.composite``), as grey replicated to three channels (IR cameras are mono,
and the plate detector sees grey too). Loss: DB's balanced cross-entropy (hard negatives 3:1)
plus dice, both masked where a plate is too small or cut by the crop edge.

Checkpoints every ``--save-every`` steps into ``--work``; rerunning the same command resumes.

    PYTHONPATH=. .venv-train/bin/python -m training.platemap.train --steps 1500
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import onnx
import tensorflow as tf

from training.detector.data import splits
from training.detector.sampler import augment, load_all
from training.detector.train import make_paste
from training.platemap.targets import plate_map
from training.recognizer.trainable import OnnxNet
from training.textlines.export import source_onnx

log = logging.getLogger("platemap.train")
WORK = Path("training/work/platemap")
CROP = 320
OUTPUT = "sigmoid_0.tmp_0"


def to_input(grey: np.ndarray) -> np.ndarray:
    """(N, H, W) grey in [0, 1] -> (N, 3, H, W) as upstream normalises BGR: x / 127.5 - 1."""
    x = grey * 2.0 - 1.0
    return np.repeat(x[:, None], 3, axis=1).astype(np.float32)


def make_batch(items, rng, n, paste, synth_p, roll=None):  # type: ignore[no-untyped-def]
    """``roll``: turn crops by up to this many degrees and mark real plates by their turned
    outline (None: the sampler's 5 degrees and box targets, as the committed map was made)."""
    xs, gts, masks = [], [], []
    for _ in range(n):
        item = items[int(rng.integers(len(items)))]
        use = paste if paste is not None and rng.random() < synth_p else None
        if roll is None:
            c = augment(item, rng, use, CROP)
        else:
            c = augment(item, rng, use, CROP, roll=roll, real_quads=True)
        gt, mask = plate_map(CROP, c.plates, c.corners, c.cut_plates)
        xs.append(c.image)
        gts.append(gt)
        masks.append(mask)
    return to_input(np.stack(xs)), np.stack(gts)[:, None], np.stack(masks)[:, None]


def db_loss(prob: tf.Tensor, gt: tf.Tensor, mask: tf.Tensor) -> dict[str, tf.Tensor]:
    """DB's balanced BCE (all positives, the hardest 3x as many negatives) + dice."""
    eps = 1e-6
    p = tf.clip_by_value(prob, eps, 1 - eps)
    bce = -(gt * tf.math.log(p) + (1 - gt) * tf.math.log(1 - p))
    pos = gt * mask
    neg = (1 - gt) * mask
    n_pos = tf.reduce_sum(pos)
    n_neg = tf.minimum(tf.reduce_sum(neg), tf.maximum(n_pos * 3.0, 1000.0))
    neg_loss = tf.reshape(bce * neg, [-1])
    top, _ = tf.math.top_k(neg_loss, k=tf.cast(n_neg, tf.int32))
    balanced = (tf.reduce_sum(bce * pos) + tf.reduce_sum(top)) / (n_pos + n_neg + eps)
    inter = tf.reduce_sum(prob * gt * mask)
    union = tf.reduce_sum(prob * mask) + tf.reduce_sum(gt * mask) + eps
    dice = 1 - 2 * inter / union
    return {"bce": balanced, "dice": dice}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--synth-p", type=float, default=0.5, help="share of crops with pasted plates")
    p.add_argument("--real-share", type=float, default=0.5,
                   help="share of pasted plates that are real plate photos")
    p.add_argument("--save-every", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", type=Path, default=WORK)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--roll", type=float, default=None, metavar="DEG",
                   help="turn crops by up to DEG degrees, real plates marked by their turned "
                   "outline (default: 5 degrees, box targets)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    tf.config.threading.set_intra_op_parallelism_threads(a.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    a.work.mkdir(parents=True, exist_ok=True)

    net = OnnxNet(onnx.load(str(source_onnx())))
    variables = list(net.trainable_by_name.values())

    def lr_at(step: tf.Tensor) -> tf.Tensor:
        s = tf.cast(step, tf.float32)
        warm = s / float(a.warmup)
        cos = 0.5 * (1 + tf.cos(math.pi * tf.minimum(s / float(a.steps), 1.0)))
        return a.lr * tf.minimum(warm, 1.0) * (0.02 + 0.98 * cos)

    opt = tf.keras.optimizers.Adam(learning_rate=lambda: lr_at(opt.iterations))
    opt.build(variables)
    ckpt = tf.train.Checkpoint(net=net, opt=opt)
    manager = tf.train.CheckpointManager(ckpt, str(a.work / "ckpt"), max_to_keep=2)
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint)
        log.info("resumed at step %d", int(opt.iterations))

    @tf.function(reduce_retracing=True)
    def step(x: tf.Tensor, gt: tf.Tensor, mask: tf.Tensor) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            prob = net(x, [OUTPUT])[0]
            parts = db_loss(prob, gt, mask)
            loss = parts["bce"] + parts["dice"]
        grads = tape.gradient(loss, variables)
        grads, _ = tf.clip_by_global_norm(grads, 5.0)
        opt.apply_gradients(zip(grads, variables, strict=True))
        return {"loss": loss, **parts}

    train, test = splits()
    items = load_all(train)
    log.info("loaded %d training scenes (%d held out, never used)", len(items), len(test))
    start = int(opt.iterations)
    paste = make_paste(4321 + start, a.real_share)
    sums: dict[str, float] = {}
    t0 = time.monotonic()
    for i in range(start, a.steps):
        rng = np.random.default_rng([a.seed, i])
        x, gt, mask = make_batch(items, rng, a.batch, paste, a.synth_p, a.roll)
        res = step(tf.constant(x), tf.constant(gt), tf.constant(mask))
        for k, v in res.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        done = i + 1
        if done % a.save_every == 0 or done == a.steps:
            manager.save(checkpoint_number=done)
            n = done - start if done - start < a.save_every else a.save_every
            log.info("step %d/%d %.1fs/step lr=%.2e %s", done, a.steps,
                     (time.monotonic() - t0) / n, float(lr_at(done)),
                     " ".join(f"{k}={v / n:.4f}" for k, v in sums.items()))
            np.savez(a.work / "weights.npz", **net.weights())
            (a.work / "state.json").write_text(json.dumps({"step": done, "steps": a.steps}))
            sums, t0, start = {}, time.monotonic(), done
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
