"""Do the ImageNet weights help the plate detector? A short, equal fine-tune from imported vs random weights.

Trains one detector (default ``ssd_mnet025_fpn_pt``) twice with the project's ``train_detector``: same seed,
data, crops, head initialisation and schedule; once with the backbone from ``../shared/pretrained``
(``copy_backbone``), once with the random backbone ``init_net`` gives. Both use the pretrained weights' input
normalisation, ``(x - 128) / 128``. Then, on a fixed subset of the validation split of ``../shared/data``:

* validation loss: the training loss (focal + smooth-L1) on fixed 320x320 crops of validation photos
  (no synthetic plates), network in inference mode;
* detector recall: labelled plates with a detection of IoU >= 0.5 at detector score >= 0.1 / 0.3 / 0.5, on the
  whole photo at ``long_side`` 640, and detections per photo that overlap no labelled plate (IoU < 0.1).

    python scripts/models/pretrained_sanity.py [--iterations 300] [--batch 8] [--train-photos 400]
                                        [--val-photos 300] [--out runs/pretrained_sanity]

A rerun reuses finished trainings (``<out>/<variant>/final.params``). Numbers only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import mxnet as mx  # noqa: E402

from model_store.runtime import anchors_for, decode_boxes, flatten_outputs, nms, preprocess, sigmoid  # noqa: E402
from model_training.augment import DetectorSampler, load_photos  # noqa: E402
from model_training.data import DEFAULT_DATA_ROOT, load_split  # noqa: E402
from model_training.nets import get_net, init_net  # noqa: E402
from model_training.pretrained import (  # noqa: E402
    PRETRAINED_MEAN,
    PRETRAINED_STD,
    copy_backbone,
    default_pretrained_root,
)
from model_training.train import (  # noqa: E402
    TrainOptions,
    default_config,
    flatten_levels,
    focal_loss,
    train_detector,
)

logger = logging.getLogger("pretrained_sanity")
BACKBONE_OF = {"ssd_mnet025_fpn_pt": "mobilenet0.25", "ssd_mnet050_fpn_pt": "mobilenet0.5",
               "ssd_mnet075_fpn_pt": "mobilenet0.75", "ssd_mnetv2_fpn_pt": "mobilenetv2_1.0"}


def _spread(samples: list[Any], n: int, seed: int) -> list[Any]:
    """n samples drawn evenly over the data folders (by source), fixed by seed."""
    rng = np.random.default_rng(seed)
    by_source: dict[str, list[Any]] = {}
    for s in samples:
        by_source.setdefault(s.source.split("/")[0], []).append(s)
    picked: list[Any] = []
    for group in by_source.values():
        k = max(1, round(n * len(group) / len(samples)))
        picked += [group[i] for i in rng.permutation(len(group))[:k]]
    return picked


def initial_params(arch: str, pretrained: Path | None, path: Path, seed: int) -> Path:
    """What train_detector would start from (same seed, same head prior), with or without the ImageNet backbone."""
    net = init_net(get_net(arch), seed=seed)
    net(mx.nd.zeros((1, 3, 64, 64)))
    prior = -float(np.log((1 - 0.01) / 0.01))
    for head in net.cls_heads:
        head.bias.set_data(mx.nd.full(head.bias.shape, prior))
    if pretrained is not None:
        copy_backbone(net, BACKBONE_OF[arch], root=pretrained)
    path.parent.mkdir(parents=True, exist_ok=True)
    net.save_parameters(str(path))
    return path


def val_loss(net: Any, photos: list[Any], cfg: dict[str, Any], batches: int, batch: int) -> dict[str, float]:
    sampler = DetectorSampler(photos, cfg, size=320, synth_p=0.0, seed=123)
    n_levels = len(cfg["levels"])
    cls, box = [], []
    for _ in range(batches):
        x, cls_t, box_t = (mx.nd.array(a) for a in sampler.batch(batch))
        logits, offsets = flatten_levels(mx.nd, net(x), n_levels)
        npos = mx.nd.maximum(mx.nd.sum(cls_t == 1), 1.0)
        cls.append(float((focal_loss(mx.nd, logits, cls_t) / npos).asscalar()))
        pos = (cls_t == 1).expand_dims(-1)
        box.append(float((mx.nd.sum(mx.nd.smooth_l1(offsets - box_t, scalar=3.0) * pos) / npos).asscalar()))
    return {"val_cls_loss": float(np.mean(cls)), "val_box_loss": float(np.mean(box))}


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of a (N, 4) with every box of b (M, 4), x1y1x2y2."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def detect(net: Any, image: np.ndarray, cfg: dict[str, Any], threshold: float) -> tuple[np.ndarray, np.ndarray]:
    x, scale = preprocess(image, cfg["long_side"], cfg["pad_to"], cfg["mean"], cfg["std"])
    outputs = [o.asnumpy() for o in net(mx.nd.array(x))]
    logits, offsets = flatten_outputs(outputs, len(cfg["levels"]))
    scores = sigmoid(logits)
    idx = np.nonzero(scores >= threshold)[0]
    idx = idx[np.argsort(-scores[idx])[: cfg["pre_nms_top_k"]]]
    boxes = decode_boxes(anchors_for(cfg["levels"], x.shape[2], x.shape[3])[idx], offsets[idx], cfg["box_stds"])
    keep = nms(boxes / scale, scores[idx], cfg["nms_iou"], cfg["max_detections"])
    return (boxes / scale)[keep], scores[idx][keep]


def recall(net: Any, samples: list[Any], cfg: dict[str, Any], thresholds: tuple[float, ...]) -> dict[str, float]:
    found = {t: 0 for t in thresholds}
    spurious = {t: 0 for t in thresholds}
    plates = 0
    for s in samples:
        image = s.image
        gt = np.asarray(s.boxes, dtype=np.float64).reshape(-1, 4)
        plates += len(gt)
        boxes, scores = detect(net, image, cfg, min(thresholds))
        for t in thresholds:
            b = boxes[scores >= t]
            iou = _iou(gt, b)
            found[t] += int((iou.max(axis=1) >= 0.5).sum()) if len(b) else 0
            spurious[t] += int((iou.max(axis=0) < 0.1).sum()) if len(gt) else len(b)
    out: dict[str, float] = {"plates": plates, "photos": len(samples)}
    for t in thresholds:
        out[f"recall@iou0.5,score{t}"] = found[t] / max(plates, 1)
        out[f"spurious/photo,score{t}"] = spurious[t] / max(len(samples), 1)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="ssd_mnet025_fpn_pt", choices=sorted(BACKBONE_OF))
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT)
    ap.add_argument("--pretrained", type=Path, default=default_pretrained_root())
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--train-photos", type=int, default=400)
    ap.add_argument("--val-photos", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "pretrained_sanity")
    ap.add_argument("--variants", default="imagenet,random",
                    help="which starts to train: imagenet, random or both (imagenet alone: a width comparison)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    t0 = time.time()
    train, val = load_split(args.data)
    train_s, val_s = _spread(train, args.train_photos, args.seed), _spread(val, args.val_photos, args.seed)
    logger.info("%d of %d training photos, %d of %d validation photos", len(train_s), len(train), len(val_s), len(val))
    train_photos, val_photos = load_photos(train_s), load_photos(val_s)
    config = default_config(detector_arch=args.arch)
    config["detector"].update(mean=PRETRAINED_MEAN, std=PRETRAINED_STD)
    cfg = config["detector"]
    results = {}
    for variant in args.variants.split(","):
        if variant not in ("imagenet", "random"):
            raise SystemExit(f"unknown variant {variant!r}: imagenet, random")
        out = args.out / variant
        if not (out / "final.params").is_file():
            init = initial_params(args.arch, args.pretrained if variant == "imagenet" else None,
                                  out / "init.params", args.seed)
            opts = TrainOptions(out_dir=out, iterations=args.iterations, batch_size=args.batch, lr=args.lr,
                                warmup=min(50, args.iterations // 4), checkpoint_every=args.iterations,
                                seed=args.seed, init_from=init)
            t1 = time.time()
            train_detector(train_photos, config, opts, synth_p=0.3)
            logger.info("%s: trained in %.0f s", variant, time.time() - t1)
        net = get_net(args.arch)
        net.load_parameters(str(out / "final.params"), ctx=mx.cpu())
        net.hybridize(static_alloc=True)
        results[variant] = {**val_loss(net, val_photos, cfg, batches=20, batch=8),
                            **recall(net, val_s, cfg, (0.1, 0.3, 0.5))}
        logger.info("%s: %s", variant, results[variant])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                       "results": results}, indent=1) + "\n")
    keys = list(next(iter(results.values())))
    print(f"{args.arch}, {args.iterations} iterations x batch {args.batch}, {len(train_s)} training photos; "
          f"validation: {len(val_s)} photos ({time.time() - t0:.0f} s in all)")
    print("| variant | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for variant, r in results.items():
        print(f"| {variant} | " + " | ".join(f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k])
                                             for k in keys) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
