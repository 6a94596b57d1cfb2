"""Training for the detector and the landmark model (MXNet/Gluon, CPU).

Both trainers share one loop: fixed seeds, a tqdm progress bar, a checkpoint every
``checkpoint_every`` iterations (params + optimizer state + iteration, written atomically), resume
from the newest checkpoint, a JSONL metrics log and a training-curve PNG in the run folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon
from tqdm import tqdm

from model_training.nets import DEFAULT_DETECTOR, default_levels, get_net, init_net

logger = logging.getLogger(__name__)

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def default_config(name: str = "plateveil-plates", version: str = "0.0.0", detector_arch: str = DEFAULT_DETECTOR
                   ) -> dict[str, Any]:
    """Pre/post-processing config written into ``model.json`` (see model_store.runtime)."""
    return {
        "name": name,
        "version": version,
        "detector": {
            "arch": detector_arch, "long_side": 640, "pad_to": 32, "mean": MEAN, "std": STD,
            "levels": default_levels(detector_arch), "box_stds": [0.1, 0.1, 0.2, 0.2], "score_threshold": 0.3,
            "nms_iou": 0.4, "max_detections": 30, "pre_nms_top_k": 400,
        },
        "landmarks": {
            "arch": "landmark_cnn", "input_w": 128, "input_h": 64, "expand_x": 0.25, "expand_y": 0.6,
            "min_aspect": 1.0, "max_aspect": 4.0, "mean": MEAN, "std": STD, "score_threshold": 0.5,
            "keep_detector_above": 0.85, "margin_x": 0.04, "margin_y": 0.12,
            # of two kept regions, drop the one whose box holds 70% of a better-scored one and is 1.5x its area
            # (geometry.drop_enclosing)
            "enclosing_cover": 0.7, "enclosing_ratio": 1.5,
        },
    }


@dataclass
class TrainOptions:
    out_dir: Path
    iterations: int
    batch_size: int
    lr: float = 2e-3
    wd: float = 1e-4
    warmup: int = 200
    checkpoint_every: int = 200
    seed: int = 0
    threads: int = 0
    init_from: Path | None = None   # warm start: weights to begin from when there is no checkpoint yet


def _lr_at(it: int, opts: TrainOptions) -> float:
    if it < opts.warmup:
        return opts.lr * (it + 1) / opts.warmup
    frac = (it - opts.warmup) / max(1, opts.iterations - opts.warmup)
    return opts.lr * (0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * min(frac, 1.0))))


@contextlib.contextmanager
def _prefetch(make_batch: Callable[[], tuple], depth: int = 3) -> Iterator[Callable[[], tuple]]:
    """Build batches in a background thread (numpy/cv2 release the GIL for the heavy parts). The thread stops
    when the block ends, so no batch building outlives the training run that wanted it."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            batch = make_batch()
            while not stop.is_set():
                try:
                    q.put(batch, timeout=0.1)
                    break
                except queue.Full:
                    continue

    thread = threading.Thread(target=worker, daemon=True, name="batch-prefetch")
    thread.start()
    try:
        yield q.get
    finally:
        stop.set()
        thread.join(timeout=30)


def _save_checkpoint(net: gluon.Block, trainer: gluon.Trainer, out_dir: Path, it: int) -> None:
    ckpt = out_dir / "checkpoint"
    ckpt.mkdir(parents=True, exist_ok=True)
    net.save_parameters(str(ckpt / "net.params.tmp"))
    trainer.save_states(str(ckpt / "trainer.states.tmp"))
    os.replace(ckpt / "net.params.tmp", ckpt / "net.params")
    os.replace(ckpt / "trainer.states.tmp", ckpt / "trainer.states")
    (ckpt / "state.json.tmp").write_text(json.dumps({"iteration": it}))
    os.replace(ckpt / "state.json.tmp", ckpt / "state.json")


def _load_checkpoint(net: gluon.Block, trainer: gluon.Trainer, out_dir: Path) -> int:
    ckpt = out_dir / "checkpoint"
    if not (ckpt / "state.json").is_file():
        return 0
    net.load_parameters(str(ckpt / "net.params"), ctx=mx.cpu())
    trainer.load_states(str(ckpt / "trainer.states"))
    it = int(json.loads((ckpt / "state.json").read_text())["iteration"])
    logger.info("resumed %s at iteration %d", out_dir, it)
    return it


def plot_curves(log_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    if not rows:
        return
    keys = [k for k in rows[0] if k not in ("iteration", "lr", "elapsed_s", "images_per_s")]
    fig, axes = plt.subplots(1, len(keys) + 1, figsize=(4 * (len(keys) + 1), 3.2))
    its = [r["iteration"] for r in rows]
    for ax, k in zip(axes, keys, strict=False):
        ax.plot(its, [r[k] for r in rows])
        ax.set_title(k)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    axes[-1].plot(its, [r["lr"] for r in rows])
    axes[-1].set_title("learning rate")
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)
    plt.close(fig)


def run_training(net: gluon.HybridBlock, step: Callable[[int], dict[str, float]], opts: TrainOptions,
                 trainer: gluon.Trainer, log_every: int = 20) -> Path:
    """Drive ``step(iteration) -> losses`` with checkpoints, resume, a log and curves."""
    out = Path(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "options.json").write_text(json.dumps({k: str(v) for k, v in asdict(opts).items()}, indent=2))
    start = _load_checkpoint(net, trainer, out)
    if start == 0 and opts.init_from is not None:
        net.load_parameters(str(opts.init_from), ctx=mx.cpu())
        logger.info("warm start of %s from %s", out, opts.init_from)
    log_path = out / "metrics.jsonl"
    acc: dict[str, list[float]] = {}
    t0, seen = time.time(), 0
    bar = tqdm(range(start, opts.iterations), initial=start, total=opts.iterations, desc=out.name,
               mininterval=5.0, dynamic_ncols=True)
    for it in bar:
        trainer.set_learning_rate(_lr_at(it, opts))
        losses = step(it)
        seen += opts.batch_size
        for k, v in losses.items():
            acc.setdefault(k, []).append(v)
        if (it + 1) % log_every == 0:
            row = {"iteration": it + 1, **{k: float(np.mean(v)) for k, v in acc.items()},
                   "lr": trainer.learning_rate, "elapsed_s": round(time.time() - t0, 1),
                   "images_per_s": round(seen / max(time.time() - t0, 1e-6), 1)}
            with log_path.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            bar.set_postfix({k: f"{row[k]:.3f}" for k in acc}, refresh=False)
            acc = {}
        if (it + 1) % opts.checkpoint_every == 0 or it + 1 == opts.iterations:
            _save_checkpoint(net, trainer, out, it + 1)
            if log_path.is_file():
                plot_curves(log_path, out / "curves.png")
    net.save_parameters(str(out / "final.params"))
    return out


# ----------------------------------------------------------------------------------------------
# Detector


def focal_loss(F, logits, target, alpha: float = 0.25, gamma: float = 2.0):
    """Sigmoid focal loss summed over anchors whose target is 0 or 1 (-1 = ignore)."""
    valid = target >= 0
    t = F.clip(target, 0, 1)
    p = F.sigmoid(logits)
    ce = F.relu(logits) - logits * t + F.log(1 + F.exp(-F.abs(logits)))
    pt = p * t + (1 - p) * (1 - t)
    w = (alpha * t + (1 - alpha) * (1 - t)) * (1 - pt) ** gamma
    return F.sum(w * ce * valid)


def flatten_levels(F, outputs, num_levels: int):
    """Same order as runtime.flatten_outputs, batched: (B, K) logits and (B, K, 4) offsets."""
    cls_parts, box_parts = [], []
    for i in range(num_levels):
        c, b = outputs[2 * i], outputs[2 * i + 1]
        cls_parts.append(F.reshape(F.transpose(c, axes=(0, 2, 3, 1)), shape=(0, -1)))
        bt = F.reshape(b, shape=(0, -4, -1, 4, -2))             # B, A, 4, H, W
        bt = F.transpose(bt, axes=(0, 3, 4, 1, 2))               # B, H, W, A, 4
        box_parts.append(F.reshape(bt, shape=(0, -1, 4)))
    return F.concat(*cls_parts, dim=1), F.concat(*box_parts, dim=1)


def train_detector(photos: list[Any], config: dict[str, Any], opts: TrainOptions, synth_p: float = 0.4,
                   crop: int = 320, layouts: Sequence[str] | None = None,
                   source_weights: dict[str, float] | None = None) -> gluon.HybridBlock:
    from model_training.augment import DetectorSampler

    mx.random.seed(opts.seed)
    np.random.seed(opts.seed)
    cfg = config["detector"]
    net = init_net(get_net(cfg["arch"]), seed=opts.seed)
    prior = -float(np.log((1 - 0.01) / 0.01))
    for head in net.cls_heads:
        head.bias.set_data(mx.nd.full(head.bias.shape, prior))
    net.hybridize(static_alloc=True)
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": opts.lr, "wd": opts.wd,
                                                           "clip_gradient": 5.0})
    sampler = DetectorSampler(photos, cfg, size=crop, synth_p=synth_p, seed=opts.seed, layouts=layouts,
                              source_weights=source_weights)
    n_levels = len(cfg["levels"])

    def step(it: int) -> dict[str, float]:
        x, cls_t, box_t = next_batch()
        x, cls_t, box_t = mx.nd.array(x), mx.nd.array(cls_t), mx.nd.array(box_t)
        with autograd.record():
            logits, offsets = flatten_levels(mx.nd, net(x), n_levels)
            npos = mx.nd.maximum(mx.nd.sum(cls_t == 1), 1.0)
            lc = focal_loss(mx.nd, logits, cls_t) / npos
            pos = (cls_t == 1).expand_dims(-1)
            lb = mx.nd.sum(mx.nd.smooth_l1(offsets - box_t, scalar=3.0) * pos) / npos
            loss = lc + lb
        loss.backward()
        trainer.step(1)
        return {"cls_loss": float(lc.asscalar()), "box_loss": float(lb.asscalar())}

    with _prefetch(lambda: sampler.batch(opts.batch_size)) as next_batch:   # step() reads it
        run_training(net, step, opts, trainer)
    return net


def adapt_detector_params(params: Path, from_arch: str, to_arch: str, out: Path, box_stds: list[float]) -> Path:
    """Warm-start weights for detector ``to_arch`` from trained ``from_arch`` params whose anchor shapes differ
    (same backbone, same widths): everything but the heads is copied; each anchor shape of ``to_arch`` starts
    from the ``from_arch`` shape of its width with the nearest w/h ratio, its box outputs rescaled so that it
    decodes to the very box that shape predicts. Training then only has to learn what is new."""
    old_levels, new_levels = default_levels(from_arch), default_levels(to_arch)
    if [lv["stride"] for lv in old_levels] != [lv["stride"] for lv in new_levels]:
        raise ValueError(f"{from_arch} and {to_arch} have different levels: cannot adapt")
    loaded = mx.nd.load(str(params))
    out_params = dict(loaded)
    for i, (old, new) in enumerate(zip(old_levels, new_levels, strict=True)):
        src = []
        for w, h in new["anchors"]:
            same_w = [k for k, (ow, _) in enumerate(old["anchors"]) if ow == w]
            if not same_w:
                raise ValueError(f"{to_arch} has an anchor width {w} that {from_arch} lacks at stride {new['stride']}")
            k = min(same_w, key=lambda k: abs(np.log(old["anchors"][k][1] / h)))
            src.append((k, old["anchors"][k][1] / h))   # source shape, its height over the new one
        cls_w, cls_b = loaded[f"cls_heads.{i}.weight"].asnumpy(), loaded[f"cls_heads.{i}.bias"].asnumpy()
        box_w, box_b = loaded[f"box_heads.{i}.weight"].asnumpy(), loaded[f"box_heads.{i}.bias"].asnumpy()
        new_cls_w = np.stack([cls_w[k] for k, _ in src])
        new_cls_b = np.array([cls_b[k] for k, _ in src])
        new_box_w = np.concatenate([box_w[4 * k:4 * k + 4] for k, _ in src])
        new_box_b = np.concatenate([box_b[4 * k:4 * k + 4] for k, _ in src])
        for j, (_, h_ratio) in enumerate(src):
            # cy = cy_a + t_y * std_y * h_a and h = h_a * exp(t_h * std_h): the same box from a taller anchor
            new_box_w[4 * j + 1] *= h_ratio
            new_box_b[4 * j + 1] *= h_ratio
            new_box_b[4 * j + 3] += np.log(h_ratio) / box_stds[3]
        for name, value in ((f"cls_heads.{i}.weight", new_cls_w), (f"cls_heads.{i}.bias", new_cls_b),
                            (f"box_heads.{i}.weight", new_box_w), (f"box_heads.{i}.bias", new_box_b)):
            out_params[name] = mx.nd.array(value)
    out.parent.mkdir(parents=True, exist_ok=True)
    mx.nd.save(str(out), out_params)
    logger.info("adapted %s (%s) to %s: %s", params, from_arch, to_arch, out)
    return out


def average_params(params: Sequence[Path], out: Path) -> Path:
    """The element-wise mean of several trained copies of one network (a "model soup", Wortsman et al. 2022;
    over the cycles of one run it is stochastic weight averaging, Izmailov et al. 2018). The copies must share
    their starting point (fine-tunes of one stage, or a stage and its continuation), so that their weights lie
    in one basin and their mean is a better network than each, not a broken one; BatchNorm's running
    statistics are averaged with the rest."""
    if len(params) < 2:
        raise ValueError(f"averaging needs at least two weight files, got {len(params)}")
    loaded = [mx.nd.load(str(p)) for p in params]
    for p, d in zip(params[1:], loaded[1:], strict=True):
        if d.keys() != loaded[0].keys() or any(d[k].shape != loaded[0][k].shape for k in d):
            raise ValueError(f"{p} is not the same network as {params[0]}: cannot average them")
    mean = {k: sum(d[k].astype("float32") for d in loaded) / len(loaded) for k in loaded[0]}
    out.parent.mkdir(parents=True, exist_ok=True)
    mx.nd.save(str(out), mean)
    logger.info("averaged %s into %s", ", ".join(map(str, params)), out)
    return out


# ----------------------------------------------------------------------------------------------
# Landmarks


def train_landmarks(photos: list[Any], config: dict[str, Any], opts: TrainOptions, synth_p: float = 0.6,
                    hard_negatives: list[tuple[int, np.ndarray]] | None = None, lowres_p: float = 0.0,
                    layouts: Sequence[str] | None = None, context_p: float = 0.0,
                    synth_neg_p: float = 0.0, synth_neg_kinds: Sequence[str] | None = None,
                    corner_weight: float = 1.0) -> gluon.HybridBlock:
    """``corner_weight``: of the corner loss against the plate/not-plate loss (1: as 1.10.0 was trained)."""
    from model_training.augment import LandmarkSampler

    mx.random.seed(opts.seed)
    np.random.seed(opts.seed)
    cfg = config["landmarks"]
    net = init_net(get_net(cfg["arch"]), seed=opts.seed)
    net.hybridize(static_alloc=True)
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": opts.lr, "wd": opts.wd,
                                                           "clip_gradient": 5.0})
    sampler = LandmarkSampler(photos, cfg, synth_p=synth_p, seed=opts.seed, lowres_p=lowres_p,
                              layouts=layouts, context_p=context_p,
                              synth_neg_p=synth_neg_p, synth_neg_kinds=synth_neg_kinds)
    sampler.hard_negatives = list(hard_negatives or [])
    ce = gluon.loss.SoftmaxCrossEntropyLoss()

    def step(it: int) -> dict[str, float]:
        x, corners, label, weight = (mx.nd.array(a) for a in next_batch())
        with autograd.record():
            pred_c, logits = net(x)
            wsum = mx.nd.maximum(mx.nd.sum(weight), 1.0)
            lcorn = mx.nd.sum(mx.nd.smooth_l1((pred_c - corners) * 10, scalar=1.0).sum(axis=1) * weight) / wsum
            lcls = ce(logits, label).mean()
            loss = corner_weight * lcorn + lcls
        loss.backward()
        trainer.step(1)
        acc = float((logits.argmax(axis=1) == label).mean().asscalar())
        return {"corner_loss": float(lcorn.asscalar()), "cls_loss": float(lcls.asscalar()), "acc": acc}

    with _prefetch(lambda: sampler.batch(opts.batch_size)) as next_batch:   # step() reads it
        run_training(net, step, opts, trainer)
    return net
