"""Fine-tune the whole PP-OCRv4 recognizer (backbone, neck and plate heads) on plate crops.

``train_heads.py`` trains only the heads on frozen features; the features themselves never learnt
what a plate looks like (the blue EU band beside the first letter, US state banners and slogans
around the registration, 40 px dashcam plates). This trains every weight of the upstream graph,
run through :class:`~training.recognizer.trainable.OnnxNet`, starting from the pretrained
network with the fine-tuned heads:

* CTC loss on the characters (tolerates any alignment), cross-entropy on the region head;
* an L2 pull of every weight towards its starting value ("L2-SP"), and a learning rate ten times
  lower for the backbone and neck than for the heads: a few thousand plates must adjust, not
  overwrite, what the network learnt from millions of text lines;
* each batch mixes the sources evenly (US crops, Brazilian crops, real-scene dev plates cut with
  detector-like boxes, European crops for the region only), augmented on the fly as the
  engine's crops look (``features.jitter_crop`` / ``features.photometric``).

Batch normalisation keeps its upstream statistics. Checkpoints every ``--save-every`` steps into
``training/work/recognizer/finetune/`` and resumes from the last one (rerun the same command).
Writes ``finetuned.npz`` (every weight by its ONNX name + provenance) for ``export.py --weights``.

    PYTHONPATH=. .venv-train/bin/python -m training.recognizer.finetune --steps 1200
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from inference.ctc import best_path
from training.recognizer import graph
from training.recognizer.crop_eval import SETS, crops
from training.recognizer.features import (
    REGIONS,
    SMALL_MIN_WIDTH,
    SMALL_PLATES,
    WIDTH,
    WORK,
    SmallPlates,
    items,
    jitter_crop,
    jitter_plate_crop,
    photometric,
)
from training.recognizer.hard_cases import glare, night_ir, rolled, rolled_plate
from training.recognizer.pseudo_eu import EU
from training.recognizer.splits import DATASETS, LABEL_FIXES, label_fixes
from training.recognizer.train_heads import encode

OUT = WORK / "finetune"
HEAD_NAMES = (graph.HEAD_W, graph.HEAD_B, "region_w", "region_b")
SOURCES = ("us", "br", "scene", "eu")
SHARE = (0.25, 0.25, 0.35, 0.15)
# With European texts the European crops teach reading too, so they get a larger share (taken
# from the US and Brazilian crops, which are the val sets' sources and stay well represented).
EU_TEXT_SHARE = (0.2, 0.2, 0.35, 0.25)
TRAINER = (
    "PYTHONPATH=. .venv-train/bin/python -m training.recognizer.finetune --steps {steps}{extra}"
)


def _scene_window(img: np.ndarray, box: list[float]) -> tuple[np.ndarray, list[float]]:
    """A window around a scene plate, wide enough for any jittered cut, so frames need not stay
    in memory."""
    x, y, w, h = box
    x0, y0 = int(max(0, x - w)), int(max(0, y - 1.5 * h))
    x1, y1 = int(min(img.shape[1], x + 2 * w)), int(min(img.shape[0], y + 2.5 * h))
    return img[y0:y1, x0:x1].copy(), [x - x0, y - y0, w, h]


def eu_text_items(data: Path, labels: Path) -> list[dict]:
    """European crops with the texts ``pseudo_eu.py`` found two recognizers agree on."""
    root = data / EU
    out = []
    for line in labels.read_text().splitlines():
        r = json.loads(line)
        out.append({"path": root / r["image"], "text": r["text"], "region": "eu", "kind": "crop"})
    return out


def load_pool(data: Path, eu_texts: Path | None = None) -> dict[str, list[dict]]:
    pool: dict[str, list[dict]] = {s: [] for s in SOURCES}
    frames: dict[Path, np.ndarray | None] = {}
    todo = items(data)
    if eu_texts is not None:
        # Region-only European crops that now have a text are replaced by the labelled ones.
        texts = eu_text_items(data, eu_texts)
        named = {it["path"] for it in texts}
        todo = [it for it in todo if it["path"] not in named] + texts
    for it in todo:
        if it["kind"] == "scene":
            if it["path"] not in frames:
                frames[it["path"]] = cv2.imread(str(it["path"]), cv2.IMREAD_COLOR)
            img = frames[it["path"]]
            if img is None:
                continue
            win, box = _scene_window(img, it["box"])
            pool["scene"].append({**it, "image": win, "box": box})
        else:
            img = cv2.imread(str(it["path"]), cv2.IMREAD_COLOR)
            if img is None:
                continue
            pool["us" if it["region"] == "us" else "br" if it["region"] == "br" else "eu"].append(
                {**it, "image": img}
            )
    return pool


def val_items(data: Path, limit: int = 150) -> list[tuple[np.ndarray, str]]:
    """Held-out RGB crops (the val split by plate text) of the US and Brazilian sets."""
    return [item for _, name in SETS for item in crops(data, name, "val")[:limit]]


def rgb_input(crop_rgb: np.ndarray) -> np.ndarray:
    """One (3, 48, 240) network input, made exactly as the runtime reader makes it."""
    from inference.ocr import preprocess

    x = preprocess(np.ascontiguousarray(crop_rgb), graph.HEIGHT, WIDTH, graph.MIN_WIDTH)
    return x[0].transpose(2, 0, 1)


def to_input(crop_bgr: np.ndarray) -> np.ndarray:
    return rgb_input(crop_bgr[:, :, ::-1])


# Two-row plates (``--two-row``) are rendered (training fonts), each style's region taught to
# the region head: the Mercosur and the older grey motorcycle plates, square European plates.
TWO_ROW_STYLES = {"mercosur2": "br", "grey2": "br", "eu2": "eu"}
# Of a two-row plate's width, how wide it is pasted over a real scene plate's box (a square
# plate as wide as a long one would cover half the car).
TWO_ROW_PASTE_WIDTH = (0.4, 0.8)
# How much looser (or tighter) than the plate a two-row plate's cut is, and how far its centre
# strays (``features.jitter_crop``). The engine cuts a detector box with a margin
# (``engine.BOX_MARGIN``); looser cuts than these put the row gap outside the band
# ``inference.rows`` looks in, and no stitching can read them.
TWO_ROW_LOOSE = ((-0.05, 0.25), (-0.05, 0.3))
TWO_ROW_SHIFT = (0.05, 0.06)


# One-row Mercosur plates (``--mercosur``), Brazil's plate since 2018 (ABC1D23): every real
# Brazilian photo here shows the older grey plate (ABC1234), so without rendered ones the reader
# learns that a Brazilian plate's fifth character is a digit and reads ``SFR4O42`` as
# ``SFR4042`` at 1.00 (docs/models-ocr.md, "Mercosur car plates"). Most are lettered in FE-Schrift,
# as real ones are; the rest in the training faces.
MERCOSUR_FE_SHARE = 0.7
# A one-row plate pasted over a real plate's box covers most of its width.
ONE_ROW_PASTE_WIDTH = (0.85, 1.0)
# Every rendered style the trainer draws, with the region its plates teach the region head.
RENDERED_REGIONS = {**TWO_ROW_STYLES, "mercosur": "br"}


def rendered_crop(
    rng: np.random.Generator, scenes: list[dict], style: str, split: str = "train",
    small: SmallPlates = SMALL_PLATES,
) -> tuple[np.ndarray, str]:
    """A rendered plate of ``style`` cut as the engine cuts it (loose or tight, on a real scene
    half the time, else on the renderer's own background, in perspective), touched like the
    other crops; a two-row plate's rows then put side by side (``inference.rows.stitched``) as
    the engine reads them: (BGR picture, text)."""
    from inference.rows import stitched
    from training.realscenes.on_cars import pasted
    from training.synth import augment_plate, render_plate
    from training.synth.render import MERCOSUR_FONT

    two = style in TWO_ROW_STYLES
    font = None
    if style == "mercosur" and split == "train" and rng.random() < MERCOSUR_FE_SHARE:
        font = MERCOSUR_FONT
    plate = render_plate(rng, style=style, split=split, font=font)
    crop = None
    if scenes and rng.random() < 0.5:
        it = scenes[int(rng.integers(len(scenes)))]
        img = it["image"].copy()
        x, y, w, h = it["box"]
        f = rng.uniform(*(TWO_ROW_PASTE_WIDTH if two else ONE_ROW_PASTE_WIDTH))
        box = pasted(img, cv2.cvtColor(plate.image, cv2.COLOR_RGB2BGR),
                     (x + w * (1 - f) / 2, y, w * f, h))
        if box is not None:
            crop = jitter_crop(rng, img, list(box), TWO_ROW_LOOSE, TWO_ROW_SHIFT)
    if crop is None:
        pic, corners = augment_plate(rng, plate.image, strength=0.7)
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        box = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
        crop = jitter_crop(
            rng, cv2.cvtColor(pic, cv2.COLOR_RGB2BGR), box, TWO_ROW_LOOSE, TWO_ROW_SHIFT
        )
    if rng.random() < 0.8:
        crop = photometric(rng, crop, small)
    return (stitched(crop) if two else crop), plate.text


def draw(  # type: ignore[no-untyped-def]
    rng: np.random.Generator,
    pool: dict[str, list[dict]],
    n: int,
    mix: tuple[float, ...] = SHARE,
    hard: float = 0.0,
    small: SmallPlates = SMALL_PLATES,
    two_row: float = 0.0,
    mercosur: float = 0.0,
):
    """``n`` augmented inputs; a ``hard`` share of them rolled, and as many at IR night or in
    glare (``hard_cases``); of those ``photometric`` touches, ``small.share`` shrunk to a small
    plate first (``features.SmallPlates``); a ``two_row`` share rendered two-row plates read with
    their rows side by side (:func:`rendered_crop`), a ``mercosur`` share rendered one-row
    Mercosur plates."""
    xs, texts, regions = [], [], []
    share = np.array([mix[i] if pool[s] else 0.0 for i, s in enumerate(SOURCES)])
    share /= share.sum()
    while len(xs) < n:
        style = None
        if two_row and rng.random() < two_row:
            style = list(TWO_ROW_STYLES)[int(rng.integers(len(TWO_ROW_STYLES)))]
        elif mercosur and rng.random() < mercosur:
            style = "mercosur"
        if style is not None:
            crop, text = rendered_crop(rng, pool["scene"], style, small=small)
            if min(crop.shape[:2]) >= 2:
                xs.append(to_input(crop))
                texts.append(text)
                regions.append(REGIONS.index(RENDERED_REGIONS[style]))
            continue
        src = SOURCES[int(rng.choice(len(SOURCES), p=share))]
        it = pool[src][int(rng.integers(len(pool[src])))]
        roll = rng.random() < hard
        if src == "scene":
            img, box = rolled(rng, it["image"], it["box"]) if roll else (it["image"], it["box"])
            crop = jitter_crop(rng, img, box)
        elif roll:
            crop = jitter_crop(rng, *rolled_plate(rng, it["image"]))
        else:
            crop = it["image"] if rng.random() < 0.2 else jitter_plate_crop(rng, it["image"])
        if rng.random() < 0.8:
            crop = photometric(rng, crop, small)
        if crop.shape[0] < 2 or crop.shape[1] < 2:
            continue
        if rng.random() < hard:
            crop = night_ir(rng, crop) if rng.random() < 0.6 else glare(rng, crop)
        xs.append(to_input(crop))
        texts.append(it["text"] or "")
        regions.append(REGIONS.index(it["region"]) if it["region"] else -1)
    return np.stack(xs), texts, np.array(regions, np.int32)


MAX_LABEL = 12  # one padded length, so the training step is traced once


def greedy(logits: np.ndarray) -> str:
    """Greedy CTC read (the arg-max of logits is that of the probabilities)."""
    return "".join(graph.ALPHABET[k] for k in best_path(logits, 0)[0])


def _steps(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def _extra_args(a: argparse.Namespace) -> str:
    """The command-line options that made these weights, beyond ``--steps``."""
    out = ""
    for flag, value in (("--eu-texts", a.eu_texts), ("--init", a.init), ("--out", a.out)):
        if value is not None and not (flag == "--out" and value == OUT):
            out += f" {flag} {value}"
    if a.hard:
        out += f" --hard {a.hard}"
    if a.lr != 1e-3:
        out += f" --lr {a.lr}"
    if a.small_min != SMALL_MIN_WIDTH:
        out += f" --small-min {a.small_min}"
    if a.two_row:
        out += f" --two-row {a.two_row}"
    if a.mercosur:
        out += f" --mercosur {a.mercosur}"
    if a.small_jpeg:
        out += f" --small-jpeg {a.small_jpeg}"
    if a.small_share != SMALL_PLATES.share:
        out += f" --small-share {a.small_share}"
    if a.average:
        out += " --average " + ",".join(str(k) for k in a.average)
    if a.heads != WORK / "heads.npz":
        out += f" --heads {a.heads}"
    return out


def main() -> None:
    import tensorflow as tf

    from training.recognizer.trainable import OnnxNet

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--batch", type=int, default=24)
    p.add_argument("--lr", type=float, default=1e-3, help="heads; backbone and neck get 1/10")
    p.add_argument("--pull", type=float, default=1e-3, help="L2 weight towards starting values")
    p.add_argument("--heads", type=Path, default=WORK / "heads.npz")
    p.add_argument("--save-every", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data", type=Path, default=DATASETS)
    p.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start from this finetuned.npz (pulled towards it) instead of the pretrained net",
    )
    p.add_argument("--hard", type=float, default=0.0, help="share of rolled / night / glare")
    p.add_argument(
        "--small-min",
        type=int,
        default=SMALL_MIN_WIDTH,
        help="narrowest plate (px) the small-plate augmentation shrinks to",
    )
    p.add_argument("--small-jpeg", type=float, default=0.0,
                   help="share of the shrunk crops JPEG-compressed while small")
    p.add_argument("--small-share", type=float, default=SMALL_PLATES.share,
                   help="share of the augmented crops shrunk to a small plate first")
    p.add_argument("--two-row", type=float, default=0.0,
                   help="share of rendered two-row plates, read with their rows side by side")
    p.add_argument("--mercosur", type=float, default=0.0,
                   help="share of rendered one-row Mercosur plates (ABC1D23)")
    p.add_argument("--average", type=_steps, default=(), metavar="STEP,STEP,...",
                   help="write the mean of the weights at these steps (multiples of "
                   "--save-every; those past --steps are only saved) instead of the last ones")
    p.add_argument("--out", type=Path, default=OUT, help="checkpoints and finetuned.npz")
    p.add_argument(
        "--eu-texts",
        type=Path,
        default=None,
        help="European crop texts from pseudo_eu.py (default: their region only)",
    )
    a = p.parse_args()
    small = SmallPlates(min_width=a.small_min, share=a.small_share, jpeg=a.small_jpeg)
    if any(k % a.save_every or k <= 0 for k in a.average):
        p.error("--average steps must be multiples of --save-every")
    tf.config.threading.set_intra_op_parallelism_threads(a.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    out_dir: Path = a.out
    out_dir.mkdir(parents=True, exist_ok=True)

    h = np.load(a.heads, allow_pickle=False)
    heads_meta = json.loads(str(h["meta"]))
    model = graph.deploy_model(WIDTH, h["char_w"], h["char_b"], h["region_w"], h["region_b"])
    net = OnnxNet(model)
    init_from = ""
    if a.init is not None:
        init = np.load(a.init, allow_pickle=False)
        net.assign({k: init[k] for k in net.weights()})
        if "meta" in init.files:  # say what the starting weights were
            init_from = f"; starting from {a.init}: {json.loads(str(init['meta']))['trainer']}"
    start_values = net.weights()
    ckpt = out_dir / "ckpt.npz"
    step0 = 0
    if ckpt.exists():
        c = np.load(ckpt)
        net.assign({k: c[k] for k in start_values})
        step0 = int(c["__step"])
        print(f"resuming after step {step0}", flush=True)
    train_vars = net.trainable_by_name
    names = sorted(train_vars)
    head_vars = [train_vars[k] for k in names if k in HEAD_NAMES]
    body_vars = [train_vars[k] for k in names if k not in HEAD_NAMES]
    anchors = [tf.constant(start_values[k]) for k in names if k not in HEAD_NAMES]
    opt_head = tf.keras.optimizers.Adam(a.lr)
    opt_body = tf.keras.optimizers.Adam(a.lr / 10)

    @tf.function
    def step(x, y, ylen, text_mask, reg, reg_mask, warm):  # type: ignore[no-untyped-def]
        with tf.GradientTape() as tape:
            logits, rlogits = net(x, [graph.HEAD_ADD_OUT, "region_logits"])
            steps = tf.fill([tf.shape(x)[0]], tf.shape(logits)[1])
            ctc = tf.nn.ctc_loss(y, logits, ylen, steps, logits_time_major=False, blank_index=0)
            ctc = tf.reduce_sum(ctc * text_mask) / tf.maximum(tf.reduce_sum(text_mask), 1.0)
            rce = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.maximum(reg, 0), rlogits)
            rce = tf.reduce_sum(rce * reg_mask) / tf.maximum(tf.reduce_sum(reg_mask), 1.0)
            pull = tf.add_n(
                [tf.reduce_sum(tf.square(v - v0)) for v, v0 in zip(body_vars, anchors, strict=True)]
            )
            loss = ctc + rce + a.pull * pull
        grads = tape.gradient(loss, head_vars + body_vars)
        gh, gb = grads[: len(head_vars)], grads[len(head_vars) :]
        gh = [g * warm for g in gh]
        gb = [g * warm for g in gb]
        opt_head.apply_gradients(zip(gh, head_vars, strict=True))
        opt_body.apply_gradients(zip(gb, body_vars, strict=True))
        return ctc, rce, pull

    infer = tf.function(lambda x: net(x, [graph.HEAD_ADD_OUT])[0])
    val = val_items(a.data)

    def exact(items: list[tuple[np.ndarray, str]]) -> float:
        """Share of ``items`` (RGB crop, text) the float network reads greedily right."""
        ok = 0
        for k in range(0, len(items), 32):
            chunk = items[k : k + 32]
            x = np.stack([rgb_input(img) for img, _ in chunk])
            out = infer(tf.constant(x)).numpy()
            ok += sum(greedy(o) == t for o, (_, t) in zip(out, chunk, strict=True))
        return ok / max(1, len(items))

    def validate() -> float:
        return exact(val)

    t0 = time.time()
    pool = load_pool(a.data, a.eu_texts)
    mix = SHARE if a.eu_texts is None else EU_TEXT_SHARE
    print({k: len(v) for k, v in pool.items()}, f"loaded in {time.time() - t0:.0f} s", flush=True)
    # Diagnostic only: rendered in the held-out font, on the same scenes the training pastes on.
    two_row_val, mercosur_val = [], []
    if a.two_row:
        vrng = np.random.default_rng(20261204)
        for style in TWO_ROW_STYLES:
            for _ in range(50):
                crop, text = rendered_crop(vrng, pool["scene"], style, split="test")
                two_row_val.append((crop[:, :, ::-1].copy(), text))
    if a.mercosur:
        vrng = np.random.default_rng(20261206)
        for _ in range(100):
            crop, text = rendered_crop(vrng, pool["scene"], "mercosur", split="test")
            mercosur_val.append((crop[:, :, ::-1].copy(), text))

    def validate_two_rows() -> str:
        out = f", two-row rendered {exact(two_row_val):.3f}" if two_row_val else ""
        return out + (f", Mercosur rendered {exact(mercosur_val):.3f}" if mercosur_val else "")

    if step0 == 0:
        print(f"val exact before: {validate():.3f}{validate_two_rows()}", flush=True)
    rng = np.random.default_rng([20261202, step0])
    sums = np.zeros(3)
    t0 = time.time()
    for s in range(step0, a.steps):
        x, texts, regions = draw(rng, pool, a.batch, mix, a.hard, small, a.two_row, a.mercosur)
        labels, lengths = encode(np.array(texts), MAX_LABEL)
        has_text = np.array([len(t) > 0 for t in texts], np.float32)
        warm = min(1.0, (s + 1) / 50)
        ctc, rce, pull = step(
            tf.constant(x),
            tf.constant(labels),
            tf.constant(lengths),
            tf.constant(has_text),
            tf.constant(regions),
            tf.constant((regions >= 0).astype(np.float32)),
            tf.constant(warm, tf.float32),
        )
        sums += [float(ctc), float(rce), float(pull)]
        if (s + 1) % a.save_every == 0 or s + 1 == a.steps:
            n = a.save_every
            print(
                f"step {s + 1}: ctc {sums[0] / n:.3f} region {sums[1] / n:.3f} "
                f"pull {sums[2] / n:.2f} ({(time.time() - t0) / n:.2f} s/step)",
                flush=True,
            )
            sums[:] = 0
            t0 = time.time()
            np.savez(ckpt.with_suffix(".tmp.npz"), __step=s + 1, **net.weights())
            ckpt.with_suffix(".tmp.npz").replace(ckpt)
            if s + 1 in a.average:
                snap = out_dir / f"step-{s + 1}.npz"
                np.savez(snap.with_suffix(".tmp.npz"), **net.weights())
                snap.with_suffix(".tmp.npz").replace(snap)
        if (s + 1) % (a.save_every * 4) == 0:
            print(f"val exact at step {s + 1}: {validate():.3f}{validate_two_rows()}", flush=True)
    averaged = [k for k in a.average if k <= a.steps]  # a run in stages names them all
    if averaged:
        # The learning rate is constant, so the last weights wander round a minimum; their mean
        # over the named steps sits nearer its middle (stochastic weight averaging).
        snaps = [np.load(out_dir / f"step-{k}.npz") for k in averaged]
        net.assign({k: np.mean([sn[k] for sn in snaps], axis=0) for k in net.weights()})
    score = validate()
    print(f"val exact final: {score:.3f}{validate_two_rows()}", flush=True)
    meta = {
        **heads_meta,
        "trainer": TRAINER.format(steps=a.steps, extra=_extra_args(a)) + init_from,
        "finetune": {
            "steps": a.steps,
            "batch": a.batch,
            "lr_heads": a.lr,
            "lr_body": a.lr / 10,
            "pull": a.pull,
            "mix": dict(zip(SOURCES, mix, strict=True)),
            "init": None if a.init is None else str(a.init),
            "hard_share": a.hard,
            "small_min_width": a.small_min,
            "small_jpeg_share": a.small_jpeg,
            "small_share": a.small_share,
            "two_row_share": a.two_row,
            "two_row_styles": TWO_ROW_STYLES if a.two_row else None,
            "mercosur_share": a.mercosur,
            "averaged_steps": averaged,
            "val_exact_us_br_crops": round(score, 4),
            "pool": {k: len(v) for k, v in pool.items()},
            "label_fixes": {"file": LABEL_FIXES.name, "photos": len(label_fixes())},
            "eu_texts": None
            if a.eu_texts is None
            else {
                "file": str(a.eu_texts),
                "labelled": sum(1 for it in pool["eu"] if it["text"]),
                "how": "training.recognizer.pseudo_eu: the committed reader and the pretrained "
                "PP-OCRv4 recognizer read alike, confidence >= 0.9",
            },
        },
    }
    np.savez(out_dir / "finetuned.npz", meta=json.dumps(meta), **net.weights())
    print(f"wrote {out_dir / 'finetuned.npz'}")


if __name__ == "__main__":
    main()
