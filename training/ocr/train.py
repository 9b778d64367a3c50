"""Train the OCR network on the arrays built by :mod:`training.ocr.data`.

Run: ``.venv-train/bin/python -m training.ocr.train [--epochs 14] [--threads 1]``.
Checkpoints every epoch to ``training/work/ocr/ckpt.keras`` and resumes from it when restarted.
One TF thread by default so a parallel training on the same 2-core machine gets its share.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from training.ocr.common import WORK

log = logging.getLogger(__name__)

TRAIN_SETS = ("synth_train", "real_us_train", "real_br_train", "real_eu_train")
VAL_SETS = ("real_us_val", "real_br_val")


def load_sets(names: tuple[str, ...]) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {}
    for n in names:
        p = WORK / f"{n}.npz"
        if not p.exists():
            log.warning("missing %s", p)
            continue
        with np.load(p) as z:
            for k in ("x", "text", "region", "plate_class", "char_weight"):
                parts.setdefault(k, []).append(z[k])
    return {k: np.concatenate(v) for k, v in parts.items()}


def plate_accuracy(model, data: dict[str, np.ndarray]) -> float:  # type: ignore[no-untyped-def]
    pred = model.predict(data["x"][..., None].astype(np.float32) / 255.0, batch_size=256, verbose=0)
    chars = pred["chars"].argmax(-1)
    mask = data["char_weight"] > 0
    return float((chars == data["text"]).all(axis=1)[mask].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=14)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--stage", default="main", help="checkpoint name; a new stage restarts the LR")
    ap.add_argument("--init", type=Path, help="start a new stage from this saved model's weights")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(a.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    from training.ocr.model import build_model

    train = load_sets(TRAIN_SETS)
    val = load_sets(VAL_SETS)
    n = len(train["x"])
    log.info("train samples %d, val %d", n, len(val["x"]))
    steps = n // a.batch
    suffix = "" if a.stage == "main" else f"_{a.stage}"
    ckpt = WORK / f"ckpt{suffix}.keras"
    state_p = WORK / f"train_state{suffix}.json"
    initial_epoch = 0
    if ckpt.exists() and state_p.exists():
        model = keras.models.load_model(ckpt)
        initial_epoch = int(json.loads(state_p.read_text())["epoch"])
        log.info("resuming from epoch %d", initial_epoch)
    else:
        model = build_model()
        if a.init is not None:
            model.set_weights(keras.models.load_model(a.init).get_weights())
            log.info("stage %s starts from %s", a.stage, a.init)
        sched = keras.optimizers.schedules.CosineDecay(
            a.lr, decay_steps=steps * a.epochs, alpha=0.02, warmup_target=None
        )
        model.compile(
            optimizer=keras.optimizers.Adam(sched),
            loss={
                "chars": keras.losses.SparseCategoricalCrossentropy(),
                "region": keras.losses.SparseCategoricalCrossentropy(),
                "plate_class": keras.losses.SparseCategoricalCrossentropy(),
            },
            loss_weights={"chars": 1.0, "region": 0.05, "plate_class": 0.02},
        )

    def gen_ds(d: dict[str, np.ndarray], shuffle: bool) -> tf.data.Dataset:
        ds = tf.data.Dataset.from_tensor_slices(
            (
                d["x"],
                {
                    "chars": d["text"].astype(np.int32),
                    "region": d["region"].astype(np.int32),
                    "plate_class": d["plate_class"].astype(np.int32),
                },
                {
                    # per slot: the loss is (batch, slots) before reduction
                    "chars": np.repeat(d["char_weight"][:, None], d["text"].shape[1], axis=1),
                    "region": np.ones(len(d["x"]), np.float32),
                    "plate_class": np.ones(len(d["x"]), np.float32),
                },
            )
        )
        if shuffle:
            ds = ds.shuffle(len(d["x"]), reshuffle_each_iteration=True)

        def prep(x, y, w):  # type: ignore[no-untyped-def]
            x = tf.cast(x, tf.float32)[..., None] / 255.0
            if shuffle:  # cheap photometric jitter on top of the pre-rendered augmentation
                b = tf.random.uniform([], -0.12, 0.12)
                c = tf.random.uniform([], 0.7, 1.3)
                m = tf.reduce_mean(x)
                x = tf.clip_by_value((x - m) * c + m + b, 0.0, 1.0)
            return x, y, w

        return ds.batch(a.batch, drop_remainder=shuffle).map(prep).prefetch(2)

    class Epoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):  # type: ignore[no-untyped-def]
            model.save(ckpt)
            state_p.write_text(json.dumps({"epoch": epoch + 1}))
            acc = plate_accuracy(model, val)
            log.info("epoch %d val plate accuracy %.4f logs %s", epoch + 1, acc, logs)
            with (WORK / "train_log.jsonl").open("a") as fh:
                fh.write(
                    json.dumps(
                        {
                            "epoch": epoch + 1,
                            "val_plate_acc": acc,
                            "time": time.time(),
                            **{k: float(v) for k, v in (logs or {}).items()},
                        }
                    )
                    + "\n"
                )

    model.fit(
        gen_ds(train, True),
        epochs=a.epochs,
        initial_epoch=initial_epoch,
        callbacks=[Epoch()],
        verbose=2,
    )
    model.save(WORK / f"final{suffix}.keras")
    Path(WORK / f"DONE{suffix}").write_text("done\n")


if __name__ == "__main__":
    main()
