"""The 2.0 recipe: a short chain from the ImageNet MobileNet and the 1.10.0 landmark weights.

``plateveil models train2 STAGE|all --out runs/train2`` (``make train-2``); each stage is a run folder under one
root, with the shared trainer's fixed seeds, progress bar, checkpoints (a rerun resumes), metrics.jsonl and
curves.png. The 1.10.0 recipe (``recipe.py``) stays as it was, so the shipped 1.10.0 weights stay reproducible.

A. ``det-a``: detector ``ssd_mnet025_fpn_pt`` (MobileNet v1 0.25, the _sq anchors: widths 20-480 px at
   w/h 1, 2, 3.5 and 5) whose backbone starts from the ImageNet weights of ``../shared/pretrained``
   (``pretrained.copy_backbone``), input normalised as those weights were trained, ``(x - 128) / 128``
   (``pretrained.PRETRAINED_MEAN/STD``); one cosine cycle on the training split of every folder of
   ``../shared/data`` (reviewed labels added) plus synthetic plates of every layout. Why 0.25 and 640: the
   0.25 backbone is 0.37 GMAC at 640x384 (about 5 ms in ONNX Runtime), the 0.5 one 0.93 GMAC (11 ms) and
   a training step 2-3x slower, which the day's training time did not allow (MODEL_CARD.md, "2.0 attempt").
B. mining (``hard_negatives-2.json``): A's detector over every training photo, its boxes away from every
   labelled plate (badges, lights, signs, lettering: what this detector takes for a plate). Mining uses only the
   detector, so it runs on a bundle of A and the 1.10.0 landmark weights.
C. ``lm-b``: the landmark CNN (``landmark_cnn``, 64x128), warm-started from the 1.10.0 bundle's landmark weights
   (``params_from_bundle``; its training from scratch did not fit the day), on every folder: exact corners from
   us-closeups and ccpd-corners (and the other corner-labelled photos), box-only plates supervising the score,
   synthetic plates of every layout; negatives: B's mined boxes, the generator's car-body non-plates and
   plate-sized boxes beside a labelled plate.

D. ``det-a2``: a second cosine cycle of A (from A's weights, lr 1e-3, 3000 iterations, another seed): A's
   loss was still falling when its learning rate ran out.
E. mining again with D's detector (``hard_negatives-2b.json``); F. ``lm-c``: C fine-tuned with both mined sets.
G. ``det-a3``, a third cycle (lr 5e-4); mining down to detector score 0.08 (``hard_negatives-2c.json``: the
   shipped detector threshold is 0.15, and the sweep looks down to 0.05); ``lm-d``: F fine-tuned with the three
   mined sets, 3000 iterations. H. ``det-a4``, a fourth cycle.

``run_all2`` runs every step of ``PIPELINE_V2``, sweeps ``SHIPPED_V2`` (``det-a4`` + ``lm-d``) with the fine grid,
choosing the most plates at no more spurious regions per photo than the shipped 1.10.0 on the same photos
(``tune --reference``), and builds their bundle into ``<root>/bundle``: that is plateveil-plates 2.0.0. Measured
on the shared 2-core machine on 2026-12-01, over two sessions: about 1 h 40 min of training in all
(MODEL_CARD.md, "plateveil-plates 2.0.0", with what was tried and not shipped: ``lm-p``, ``lm-e``).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DETECTOR_ARCH = "ssd_mnet025_fpn_pt"
BACKBONE = "mobilenet0.25"
SHIPPED_1_10 = Path(__file__).resolve().parents[1] / "model_store" / "weights" / "plateveil-plates-1.10.0"
MINED2 = "hard_negatives-2.json"
MINED2B = "hard_negatives-2b.json"
MINED2C = "hard_negatives-2c.json"
MINED2D = "hard_negatives-2d.json"
_CAR_NEGATIVES = ("badge", "bumper_text", "grille", "reflection", "logo")

RECIPE_V2: dict[str, dict[str, Any]] = {
    "det-a": {"model": "detector", "arch": DETECTOR_ARCH, "init": "imagenet", "batch_size": 8, "lr": 2e-3,
              "iterations": 5600, "warmup": 100, "checkpoint_every": 100, "synth_p": 0.3, "crop": 320, "seed": 0},
    "lm-b": {"model": "landmarks", "init": "bundle-1.10.0", "hard_negatives": [MINED2], "batch_size": 64, "lr": 5e-4,
             "iterations": 1000, "warmup": 50, "checkpoint_every": 100, "synth_p": 0.5, "lowres_p": 0.3,
             "context_p": 0.5, "synth_neg_p": 0.4, "synth_neg_kinds": _CAR_NEGATIVES, "seed": 1},
    "det-a2": {"model": "detector", "arch": DETECTOR_ARCH, "init_from": "det-a", "batch_size": 8, "lr": 1e-3,
               "iterations": 3000, "warmup": 50, "checkpoint_every": 100, "synth_p": 0.3, "crop": 320, "seed": 3},
    "lm-c": {"model": "landmarks", "init_from": "lm-b", "hard_negatives": [MINED2, MINED2B], "batch_size": 64,
             "lr": 3e-4, "iterations": 1000, "warmup": 30, "checkpoint_every": 100, "synth_p": 0.5, "lowres_p": 0.3,
             "context_p": 0.5, "synth_neg_p": 0.4, "synth_neg_kinds": _CAR_NEGATIVES, "seed": 4},
    # second session: the landmark model on an ImageNet MobileNet 0.25 body, with the third mined set (det-a3's
    # boxes down to score 0.08) and three times the iterations of lm-b
    "lm-p": {"model": "landmarks", "arch": "landmark_mnet025_pt", "init": "imagenet",
             "hard_negatives": [MINED2, MINED2B, MINED2C], "batch_size": 64, "lr": 5e-4,
             "iterations": 4000, "warmup": 200, "checkpoint_every": 200, "synth_p": 0.5, "lowres_p": 0.3,
             "context_p": 0.5, "synth_neg_p": 0.4, "synth_neg_kinds": _CAR_NEGATIVES, "corner_weight": 0.5,
             "seed": 6},
    "lm-d": {"model": "landmarks", "init_from": "lm-c", "hard_negatives": [MINED2, MINED2B, MINED2C],
             "batch_size": 64, "lr": 3e-4, "iterations": 3000, "warmup": 50, "checkpoint_every": 200, "synth_p": 0.5,
             "lowres_p": 0.3, "context_p": 0.5, "synth_neg_p": 0.4, "synth_neg_kinds": _CAR_NEGATIVES, "seed": 7},
    # tried (not in PIPELINE_V2): lm-d fine-tuned with det-a4's boxes mined down to 0.08; swept against 1.10.0 it
    # chose detector 0.05 (42 ms p50 instead of 29 in make eval) for recall 0.755 at 0.193 spurious, against
    # det-a4 + lm-d's 0.761 at 0.212 (MODEL_CARD.md, "2.0.0")
    "lm-e": {"model": "landmarks", "init_from": "lm-d", "hard_negatives": [MINED2, MINED2B, MINED2C, MINED2D],
             "batch_size": 64, "lr": 2e-4, "iterations": 3000, "warmup": 50, "checkpoint_every": 200, "synth_p": 0.5,
             "lowres_p": 0.3, "context_p": 0.5, "synth_neg_p": 0.4, "synth_neg_kinds": _CAR_NEGATIVES, "seed": 9},
    # a third and a fourth detector cycle (second session: each added recall; lm-d and lm-e learn their mistakes)
    "det-a3": {"model": "detector", "arch": DETECTOR_ARCH, "init_from": "det-a2", "batch_size": 8, "lr": 5e-4,
               "iterations": 3000, "warmup": 50, "checkpoint_every": 100, "synth_p": 0.3, "crop": 320, "seed": 5},
    "det-a4": {"model": "detector", "arch": DETECTOR_ARCH, "init_from": "det-a3", "batch_size": 8, "lr": 5e-4,
               "iterations": 3000, "warmup": 50, "checkpoint_every": 100, "synth_p": 0.3, "crop": 320, "seed": 8},
    # tried after 2.0.0 shipped (not in PIPELINE_V2): does a fifth cycle still add recall?
    "det-a5": {"model": "detector", "arch": DETECTOR_ARCH, "init_from": "det-a4", "batch_size": 8, "lr": 5e-4,
               "iterations": 3000, "warmup": 50, "checkpoint_every": 100, "synth_p": 0.3, "crop": 320, "seed": 10},
}
# ("mine", detector stage, file[, lowest detector score]): the later rounds mine down to 0.08, the score the
# shipped thresholds reach towards, so the landmark model sees what it will be asked about
PIPELINE_V2: list[tuple[Any, ...]] = [
    ("train", "det-a"), ("mine", "det-a", MINED2), ("train", "lm-b"),
    ("train", "det-a2"), ("mine", "det-a2", MINED2B), ("train", "lm-c"),
    ("train", "det-a3"), ("mine", "det-a3", MINED2C, 0.08), ("train", "lm-d"),
    ("train", "det-a4"),
]
SHIPPED_V2 = ("det-a4", "lm-d")


def detector_overrides() -> dict[str, Any]:
    """What a 2.0 bundle's detector config differs in from ``train.default_config``: the pretrained input scaling."""
    from model_training.pretrained import PRETRAINED_MEAN, PRETRAINED_STD

    return {"mean": list(PRETRAINED_MEAN), "std": list(PRETRAINED_STD)}


def landmark_overrides(arch: str) -> dict[str, Any]:
    """What a 2.0 bundle's landmark config differs in from ``train.default_config``: the architecture and, for a
    pretrained (``_pt``) one, the pretrained input scaling."""
    out: dict[str, Any] = {"arch": arch}
    if arch.endswith("_pt"):
        out.update(detector_overrides())
    return out


def landmark_arch(stage: str) -> str:
    return str(RECIPE_V2[stage].get("arch", "landmark_cnn"))


def imagenet_init(arch: str, backbone: str, out: Path, seed: int, pretrained_root: Path | None = None,
                  input_shape: tuple[int, ...] = (1, 3, 64, 64)) -> Path:
    """A net's starting weights: ``init_net`` heads (for a detector, the classification bias at the 0.01 prior,
    as ``train_detector`` sets it) and the ImageNet backbone."""
    import mxnet as mx
    import numpy as np

    from model_training.nets import get_net, init_net
    from model_training.pretrained import copy_backbone

    net = init_net(get_net(arch), seed=seed)
    net(mx.nd.zeros(input_shape))
    prior = -float(np.log((1 - 0.01) / 0.01))
    for head in getattr(net, "cls_heads", []):
        head.bias.set_data(mx.nd.full(head.bias.shape, prior))
    copy_backbone(net, backbone, root=pretrained_root)
    out.parent.mkdir(parents=True, exist_ok=True)
    net.save_parameters(str(out))
    return out


def _uncounted(name: str) -> str:
    return re.sub(r"^([A-Za-z]+)\d+_", r"\1_", name)


def params_from_bundle(bundle: Path, part: str, arch: str, out: Path,
                       input_shape: tuple[int, ...] = (1, 3, 64, 128)) -> Path:
    """A bundle's exported ``{part}-0000.params`` (symbol names) as Gluon ``save_parameters`` weights of ``arch``:
    the exported names are the Gluon parameters' full names, matched one to one (same shapes)."""
    import mxnet as mx

    from model_training.nets import get_net, init_net

    net = init_net(get_net(arch), seed=0)
    # names without the counter of their top block (landmarkcnn0_, landmarkcnn1_, ...: by creation order in a
    # process); a GluonCV backbone keeps its own prefix (mobilenet0_), beside the detector's (ssdfpn0_)
    loaded = mx.nd.load(str(bundle / f"{part}-0000.params"))
    by_name = {_uncounted(k.split(":", 1)[1]): v for k, v in loaded.items()}
    params = {_uncounted(name): p for name, p in net.collect_params().items()}
    if len(params) != len(list(net.collect_params().keys())):
        raise ValueError(f"{arch}: parameter names collide without their block counters")
    missing = [name for name in params if name not in by_name]
    if missing:
        raise ValueError(f"{bundle}/{part}-0000.params lacks {len(missing)} parameters of {arch}: {missing[:5]}")
    net(mx.nd.zeros(input_shape))   # the deferred shapes
    for name, p in params.items():
        if p.shape != by_name[name].shape:
            raise ValueError(f"{name}: {p.shape} in {arch}, {by_name[name].shape} in {bundle}")
        p.set_data(by_name[name])
    out.parent.mkdir(parents=True, exist_ok=True)
    net.save_parameters(str(out))
    return out


def _stage_weights(run_dir: Path) -> Path:
    final = run_dir / "final.params"
    return final if final.is_file() else run_dir / "checkpoint" / "net.params"


def config_v2(version: str = "2.0.0", landmarks: str = "landmark_cnn") -> dict[str, Any]:
    from model_training.train import default_config

    config = default_config(version=version, detector_arch=DETECTOR_ARCH)
    config["detector"].update(detector_overrides())
    config["landmarks"].update(landmark_overrides(landmarks))
    return config


def train2(part: str, data_root: Path, out_dir: Path, iterations: int | None = None,
           pretrained_root: Path | None = None, corrections: Path | None = None) -> Path:
    """Run one 2.0 stage into ``out_dir`` (its siblings: the stages it starts from, the mined file)."""
    from model_training import mine
    from model_training.augment import load_photos
    from model_training.data import load_split
    from model_training.train import TrainOptions, train_detector, train_landmarks

    if part not in RECIPE_V2:
        raise ValueError(f"unknown 2.0 stage {part!r}; valid: {', '.join(RECIPE_V2)}")
    r = dict(RECIPE_V2[part])
    out_dir = Path(out_dir)
    root = out_dir.parent
    if r.get("init") == "imagenet":
        init_from = out_dir / "init.params"
        if not init_from.is_file():
            if r["model"] == "detector":
                imagenet_init(r["arch"], BACKBONE, init_from, r["seed"], pretrained_root)
            else:
                from model_training.nets import LANDMARK_BACKBONES

                imagenet_init(r["arch"], LANDMARK_BACKBONES[r["arch"]], init_from, r["seed"], pretrained_root,
                              input_shape=(1, 3, 64, 128))
    elif r.get("init") == "bundle-1.10.0":
        init_from = out_dir / "init.params"
        if not init_from.is_file():
            params_from_bundle(SHIPPED_1_10, "landmarks", config_v2()["landmarks"]["arch"], init_from)
    else:
        init_from = _stage_weights(root / r["init_from"])
        if not init_from.is_file():
            raise FileNotFoundError(f"stage {part!r} starts from {r['init_from']!r}: train that first ({init_from})")
    # ``corrections``: a `plateveil models corrections export` folder, read as one more data folder
    # (passed only when given, so that the stages without one call load_split as before)
    train_samples, _ = (load_split(data_root, reviewed=True, corrections=corrections) if corrections
                        else load_split(data_root, reviewed=True))
    photos = load_photos(train_samples)
    hard: list = []
    for name in r.get("hard_negatives", []):
        rows = mine.load(root / name)
        if not rows:
            raise FileNotFoundError(f"stage {part!r} needs {root / name}: run the mining step")
        hard += rows
    if hard:
        hard = [(i, box) for i, box in hard if mine.off_labels(box, photos[i])]
    opts = TrainOptions(out_dir=out_dir, iterations=iterations or r["iterations"], batch_size=r["batch_size"],
                        lr=r["lr"], warmup=r["warmup"], checkpoint_every=r["checkpoint_every"], seed=r["seed"],
                        init_from=init_from)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(
        {"stage": part, "data_root": str(data_root), "train_photos": len(photos),
         "train_plates": int(sum(len(p.boxes) for p in photos)), **{k: v for k, v in r.items()},
         "iterations": opts.iterations, "init_from": str(init_from), "hard_negatives": len(hard)}, indent=2,
        default=str))
    logger.info("training %s on %d photos (%d plates)", part, len(photos), sum(len(p.boxes) for p in photos))
    config = config_v2(landmarks=landmark_arch(part) if r["model"] == "landmarks" else "landmark_cnn")
    if r["model"] == "detector":
        train_detector(photos, config, opts, synth_p=r["synth_p"], crop=r["crop"], layouts=None)
    else:
        train_landmarks(photos, config, opts, synth_p=r["synth_p"], hard_negatives=hard, lowres_p=r["lowres_p"],
                        layouts=None, context_p=r["context_p"], synth_neg_p=r["synth_neg_p"],
                        synth_neg_kinds=r["synth_neg_kinds"], corner_weight=r.get("corner_weight", 1.0))
    return out_dir


def mining_bundle(root: Path, det: str, version: str = "2.0.0") -> Path:
    """A bundle of detector stage ``det`` and the 1.10.0 landmark weights (mining reads only the detector)."""
    from model_training.build import build_bundle

    landmarks = params_from_bundle(SHIPPED_1_10, "landmarks", config_v2()["landmarks"]["arch"],
                                   root / "landmarks-1.10.0.params")
    return build_bundle(_stage_weights(root / det), landmarks, root / f"bundle-{det}", f"{version}-{det}",
                        overrides={"detector": detector_overrides()}, detector_arch=DETECTOR_ARCH)


def build2(root: Path, det: str, lm: str, out: Path, version: str, overrides: dict[str, Any] | None = None,
           extra: dict[str, Any] | None = None) -> Path:
    from model_training.build import build_bundle

    merged: dict[str, Any] = {"detector": detector_overrides(), "landmarks": landmark_overrides(landmark_arch(lm))}
    for part, values in (overrides or {}).items():
        merged.setdefault(part, {}).update(values)
    return build_bundle(_stage_weights(root / det), _stage_weights(root / lm), out, version, overrides=merged,
                        extra=extra, detector_arch=DETECTOR_ARCH)


def training_record(root: Path, tune_dir: Path) -> dict[str, Any]:
    """``model.json``'s ``training`` and ``tuning``: each ``PIPELINE_V2`` step as it ran (the stage's
    ``summary.json``, the recipe's settings; a mining step's detector and lowest score) and the sweep's reference
    and choice (``tune_dir/sweep.json``)."""
    stages: dict[str, Any] = {}
    for step in PIPELINE_V2:
        if step[0] == "train":
            summary = json.loads((root / step[1] / "summary.json").read_text())
            stages[step[1]] = {**{k: v for k, v in RECIPE_V2[step[1]].items()
                                  if k in ("arch", "init", "init_from", "lr", "batch_size", "seed")},
                               **{k: summary[k] for k in ("train_photos", "train_plates", "iterations", "hard_negatives")
                                  if k in summary}}
        else:
            stages[f"mine {step[2]}"] = {"detector": step[1], "min_score": float(step[3]) if len(step) > 3 else 0.15}
    sweep = json.loads((tune_dir / "sweep.json").read_text())
    return {"training": {"recipe": "model_training/recipe2.py (make train-2)", "stages": stages},
            "tuning": {"split": "val", "reference": sweep.get("reference"), "chosen": sweep["best"],
                       "rule": "the most plates hidden (recall@0.8) at no more spurious regions per photo than the "
                               "reference on the same photos, excess <= 0.3 (tune --reference --fine)"}}


def run_all2(data_root: Path, root: Path, version: str = "2.0.0", pretrained_root: Path | None = None,
             corrections: Path | None = None) -> Path:
    """Every 2.0 stage, the mining, the sweep and the bundle into ``root``; what is done is kept (resumes)."""
    from model_training.mine import mine_bundle
    from model_training.tune import tune_bundle

    root = Path(root)
    for step in PIPELINE_V2:
        if step[0] == "train":
            if (root / step[1] / "final.params").is_file():
                logger.info("recipe 2.0: %s already trained", step[1])
                continue
            train2(step[1], data_root, root / step[1], pretrained_root=pretrained_root, corrections=corrections)
        else:
            _, det, name, *rest = step
            if (root / name).is_file():
                continue
            # the same photos as training (the rows index them), corrections included
            min_score = float(rest[0]) if rest else 0.15
            if corrections:
                mine_bundle(mining_bundle(root, det, version), data_root, root / name, reviewed=True,
                            min_score=min_score, corrections=corrections)
            else:
                mine_bundle(mining_bundle(root, det, version), data_root, root / name, reviewed=True,
                            min_score=min_score)
    det, lm = SHIPPED_V2
    tune_dir = root / f"tune-{det}-{lm}"   # the sweep of these two stages' bundle
    if not (tune_dir / "overrides.json").is_file():
        untuned = build2(root, det, lm, root / f"bundle-{det}-{lm}-untuned", f"{version}-untuned")
        # the most plates at no more spurious regions per photo than the shipped 1.10.0 on the same photos
        tune_bundle(untuned, data_root, tune_dir, reference=SHIPPED_1_10, fine=True)
    overrides = json.loads((tune_dir / "overrides.json").read_text())
    return build2(root, det, lm, root / "bundle", version, overrides, extra=training_record(root, tune_dir))
