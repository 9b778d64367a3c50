"""Train the plate + vehicle detector on CPU, one TensorFlow thread, resumable per epoch.

    .venv-train/bin/python -m training.detector.train [--epochs 20] [--steps 200] [--synth]

Weights and progress go to ``training/work/detector/`` after every epoch; running the same command
again resumes from the last finished epoch (the learning-rate schedule continues where it was).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from training.detector.data import OPENIMAGES, split_validation, splits  # noqa: E402
from training.detector.model import build  # noqa: E402
from training.detector.sampler import CROP, batch, load_all  # noqa: E402

if TYPE_CHECKING:
    from training.detector.composite import SynthPaster

log = logging.getLogger("training.detector.train")
WORK = Path("training/work/detector")


def focal_loss(pred: tf.Tensor, gt: tf.Tensor, class_mask: tf.Tensor) -> tf.Tensor:
    """CenterNet's penalty-reduced focal loss, classes masked where unlabelled."""
    pred = tf.clip_by_value(pred, 1e-4, 1 - 1e-4)
    mask = class_mask[:, None, None, :]
    pos = tf.cast(gt >= 1.0, tf.float32) * mask
    neg = (1.0 - tf.cast(gt >= 1.0, tf.float32)) * mask
    pos_loss = tf.math.log(pred) * tf.square(1 - pred) * pos
    neg_loss = tf.math.log(1 - pred) * tf.square(pred) * tf.pow(1 - gt, 4) * neg
    n = tf.maximum(tf.reduce_sum(pos), 1.0)
    return -(tf.reduce_sum(pos_loss) + tf.reduce_sum(neg_loss)) / n


def weighted_l1(pred: tf.Tensor, gt: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(tf.abs(pred - gt) * w) / tf.maximum(tf.reduce_sum(w), 1.0)


def losses(out: dict[str, tf.Tensor], t: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    reg_pred = tf.concat([out["offset"], out["size"]], -1)
    return {
        "heat": focal_loss(out["heatmap"], t["heatmap"], t["class_mask"]),
        "off": weighted_l1(out["offset"], t["reg"][..., :2], t["off_w"]),
        "size": weighted_l1(reg_pred[..., 2:], t["reg"][..., 2:], t["reg_w"]),
        "corners": weighted_l1(out["corners"], t["corners"], t["corners_w"]),
    }


class Schedule(tf.keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, peak: float, warmup: int, total: int) -> None:
        self.peak, self.warmup, self.total = peak, warmup, total

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        s = tf.cast(step, tf.float32)
        warm = self.peak * (s + 1) / self.warmup
        frac = tf.clip_by_value((s - self.warmup) / max(1, self.total - self.warmup), 0.0, 1.0)
        cos = 0.02 * self.peak + 0.98 * self.peak * 0.5 * (1 + tf.cos(np.pi * frac))
        return tf.where(s < self.warmup, warm, cos)

    def get_config(self) -> dict[str, float]:
        return {"peak": self.peak, "warmup": self.warmup, "total": self.total}


def make_paste(
    seed: int, real_share: float = 0.0, two_row_share: float = 0.0, decoy_share: float = 0.0
) -> SynthPaster:
    from training.detector.composite import SynthPaster, real_plate_crops
    from training.recognizer.splits import DATASETS

    real = real_plate_crops(DATASETS) if real_share > 0 else None
    return SynthPaster(seed=seed, real=real, real_share=real_share, two_row_share=two_row_share,
                       decoy_share=decoy_share)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--steps", type=int, default=200, help="steps per epoch")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--synth", action="store_true", help="paste synthetic plates into crops")
    p.add_argument("--synth-p", type=float, default=0.5, help="share of crops that get them")
    p.add_argument("--real-share", type=float, default=0.0,
                   help="share of pasted plates that are real plate photos (crop sets)")
    p.add_argument("--two-row-share", type=float, default=0.0,
                   help="share of synthetic plates drawn as two-row plates (square European, "
                        "Mercosur motorcycle); 0 keeps the region and style mix")
    p.add_argument("--decoy-share", type=float, default=0.0,
                   help="share of pasted crops that also get a block of lettering that is not a "
                        "plate, unlabelled (training.detector.decoys)")
    p.add_argument("--freeze-bn", action="store_true",
                   help="keep every batch norm as it is (inference mode): needed when --init "
                        "comes from training.detector.from_tflite, whose norms hold folded biases")
    p.add_argument("--work", type=Path, default=WORK)
    p.add_argument("--init", type=Path, help="start from these weights (fine-tuning)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--vehicle-weight", type=float, default=1.0,
                   help="weight of the vehicle heatmap loss")
    p.add_argument("--openimages-share", type=float, default=None,
                   help="share of crops drawn from openimages (default: by scene count)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hold-out-val", action="store_true",
                   help="leave the validation scenes out (data.split_validation), so that the "
                        "result can be judged on build/realscenes/val; not for a model to ship")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    ckpt = args.work / "ckpt.weights.h5"
    state_path = args.work / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {"epoch": 0}

    train, test = splits()
    if state.get("hold_out_val", False) != args.hold_out_val and state["epoch"] > 0:
        raise SystemExit(f"{args.work} was trained with hold_out_val={state.get('hold_out_val')}")
    if args.hold_out_val:
        train, val = split_validation(train)
        log.info("%d validation scenes left out", len(val))
    items = load_all(train)
    log.info("loaded %d training scenes (%d held out)", len(items), len(test))
    # A resumed run seeds its plate pool by the epoch it starts at, so its renders are new ones
    # (and the count of distinct renders in state.json stays true).
    paste = (
        make_paste(1234 + state["epoch"], args.real_share, args.two_row_share, args.decoy_share)
        if args.synth else None
    )
    probs = None
    if args.openimages_share is not None:
        is_oi = np.array([it.scene.source == OPENIMAGES for it in items])
        probs = np.where(is_oi, args.openimages_share / is_oi.sum(),
                         (1 - args.openimages_share) / (~is_oi).sum())
    class_weight = tf.constant([1.0, args.vehicle_weight])

    model = build((CROP, CROP))
    if args.freeze_bn:
        for layer in model.layers:
            if type(layer).__name__ == "BatchNormalization":
                layer.trainable = False
    total = args.epochs * args.steps
    opt = tf.keras.optimizers.Adam(Schedule(args.lr, args.warmup, total))
    if state["epoch"] > 0 and ckpt.exists():
        model.load_weights(str(ckpt))
        log.info("resumed after epoch %d", state["epoch"])
    elif args.init is not None:
        model.load_weights(str(args.init))
        log.info("initialised from %s", args.init)
    opt.build(model.trainable_variables)
    opt.iterations.assign(state["epoch"] * args.steps)

    @tf.function(reduce_retracing=True)
    def step(x: tf.Tensor, t: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            parts = losses(out, t)
            loss = parts["heat"] + parts["off"] + parts["size"] + parts["corners"]
        grads = tape.gradient(loss, model.trainable_variables)
        grads, _ = tf.clip_by_global_norm(grads, 10.0)
        opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return {"loss": loss, **parts}

    for epoch in range(state["epoch"], args.epochs):
        rng = np.random.default_rng([args.seed, epoch])
        t0 = time.monotonic()
        sums: dict[str, float] = {}
        for _ in range(args.steps):
            use_paste = paste if paste is not None and rng.random() < args.synth_p else None
            x, t = batch(items, rng, args.batch, use_paste, probs)
            t["class_mask"] = t["class_mask"] * class_weight.numpy()
            res = step(tf.constant(x), {k: tf.constant(v) for k, v in t.items()})
            for k, v in res.items():
                sums[k] = sums.get(k, 0.0) + float(v)
        tmp = args.work / "ckpt.tmp.weights.h5"
        model.save_weights(str(tmp))
        os.replace(tmp, ckpt)
        # Distinct synthetic plates rendered so far, over resumed runs too (for the manifest).
        rendered = state.get("synth_rendered", 0) + (paste.rendered if paste is not None else 0)
        if paste is not None:
            paste.rendered = 0
        state = {"epoch": epoch + 1, "steps_per_epoch": args.steps, "epochs": args.epochs,
                 "synth_rendered": rendered, "hold_out_val": args.hold_out_val}
        state_path.write_text(json.dumps(state))
        log.info(
            "epoch %d/%d %.0fs %s",
            epoch + 1,
            args.epochs,
            time.monotonic() - t0,
            " ".join(f"{k}={v / args.steps:.4f}" for k, v in sums.items()),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
