"""One recipe runner over a stage table: a recipe is data.

A recipe (``Recipe``) is a name, the bundle version it makes and a table of stages in order. Each stage
(``Stage``) is a row: a name (its run folder, or for mining its output file, under the run root), a kind, its
inputs (names of earlier rows, or ``bundle:<path>`` for a shipped bundle's weights) and its params. ``run``
walks the table in order; what a row finished is kept (a training stage's ``final.params``, a mined file, a
sweep's ``overrides.json``), so a rerun goes on where it stopped, and an interrupted training stage resumes from
its checkpoint. Seeds are params: the same table on the same data trains the same weights.

Kinds and what their rows hold:

``detector`` / ``landmarks``
    train a net (``train.train_detector`` / ``train_landmarks``). inputs: the weights it starts from (an earlier
    stage, ``bundle:<path>``, ``imagenet`` or none: from scratch), then for landmarks the mined files it learns
    from. params: the trainer's (``iterations``, ``batch_size``, ``lr``, ``warmup``, ``checkpoint_every``,
    ``seed``), the sampler's (``synth_p``, ``crop``, ``layouts``: None = ``synth.LAYOUTS``, ``lowres_p``,
    ``context_p``, ``synth_neg_p``, ``synth_neg_kinds``, ``corner_weight``; a detector's ``source_weights``: how
    much more often a folder's photos are drawn), ``arch`` and ``review_rounds`` (how
    many rounds of reviewed plates the labels get; absent: all of them). An ``_pt`` architecture (ImageNet
    backbone) gets that backbone's input scaling, in training and in the bundle.
``average``
    the element-wise mean of the input stages' weights (``train.average_params``); an input may be a
    ``bundle:`` (its part of the kind of the first input), e.g. the shipped weights a fine-tune started from.
``mine``
    the detector of inputs[0] (in a bundle with the landmark weights of inputs[1]; mining reads only the
    detector) over the training photos, its boxes away from every plate the detector stage's labels have;
    params: ``min_score`` (default 0.15).
``tune``
    the threshold sweep (``tune.tune_bundle``) of the bundle of inputs[0] + inputs[1]; params: ``reference``
    (the bundle whose spurious rate caps the choice; None: the fixed caps), ``fine``, ``combine`` (the detector
    score weights tried in the plate score, ``runtime``'s ``det_weight``), ``min_det`` (the lowest detector
    threshold tried), ``flush_below``, ``large_regions`` (the bounded-region rules tried: (photo fraction, plate
    score), ``runtime.large_region_rule``).
``bundle``
    the bundle of inputs[0] + inputs[1] with the thresholds of the tune row inputs[2], into ``<root>/<name>``;
    params: ``record`` (write each row as run and the sweep's choice into ``model.json``), ``flush_below`` (weights
    zeroed below it: ``build.FLUSH_BELOW`` by default).

``recipe.py`` (1.10.0), ``recipe2.py`` (2.0) and ``recipe3.py`` (3.0) each hold one table; ``plateveil models
train --recipe NAME STAGE|all`` runs one row or all of them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

KINDS = ("detector", "landmarks", "average", "mine", "tune", "bundle")
TRAINED = ("detector", "landmarks", "average")   # the kinds whose row leaves <root>/<name>/final.params
BUNDLE_PREFIX = "bundle:"
STARTS = ("scratch", "imagenet")   # a training row's first input that is no earlier row


@dataclass(frozen=True)
class Stage:
    name: str
    kind: str
    inputs: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    # False: a row that was tried and not shipped; it runs when asked by name, ``run`` skips it
    pipeline: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"stage {self.name!r}: unknown kind {self.kind!r}; valid: {', '.join(KINDS)}")


@dataclass(frozen=True)
class Recipe:
    name: str
    version: str
    stages: tuple[Stage, ...]
    description: str = ""

    def __getitem__(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(f"recipe {self.name}: no stage {name!r}; valid: {', '.join(s.name for s in self.stages)}")

    def names(self, kinds: Sequence[str] = KINDS) -> list[str]:
        return [s.name for s in self.stages if s.kind in kinds]

    def check(self) -> None:
        """Every input is made by an earlier row (or names a bundle / the ImageNet weights); names are unique."""
        made: set[str] = set()
        for s in self.stages:
            if s.name in made:
                raise ValueError(f"recipe {self.name}: stage {s.name!r} twice")
            for i in s.inputs:
                if i not in made and not i.startswith(BUNDLE_PREFIX) and i not in STARTS:
                    raise ValueError(f"recipe {self.name}: {s.name!r} reads {i!r}, which no earlier row makes")
            made.add(s.name)


def weights(root: Path, name: str) -> Path:
    """The weights a finished (or interrupted) stage leaves: final.params, else the last checkpoint."""
    final = root / name / "final.params"
    return final if final.is_file() else root / name / "checkpoint" / "net.params"


def done(recipe: Recipe, stage: Stage, root: Path) -> bool:
    if stage.kind in TRAINED:
        return (root / stage.name / "final.params").is_file()
    if stage.kind == "mine":
        return (root / stage.name).is_file()
    if stage.kind == "tune":
        return (root / stage.name / "overrides.json").is_file()
    return False   # a bundle is rebuilt each run (seconds): it records the rows as they are


def _bundle_path(ref: str) -> Path:
    p = Path(ref[len(BUNDLE_PREFIX):])
    return p if p.is_absolute() else Path(__file__).resolve().parents[1] / "model_store" / "weights" / p


def detector_arch(recipe: Recipe, name: str) -> str:
    """The architecture a detector stage (or an average of detector stages, or a bundle's detector) was trained as."""
    if name.startswith(BUNDLE_PREFIX):
        return str(json.loads((_bundle_path(name) / "model.json").read_text())["detector"]["arch"])
    s = recipe[name]
    if s.kind == "average":
        return detector_arch(recipe, s.inputs[0])
    from model_training.nets import DEFAULT_DETECTOR

    return str(s.params.get("arch", DEFAULT_DETECTOR))


def landmark_arch(recipe: Recipe, name: str) -> str:
    if name.startswith(BUNDLE_PREFIX):
        return str(json.loads((_bundle_path(name) / "model.json").read_text())["landmarks"]["arch"])
    s = recipe[name]
    if s.kind == "average":
        return landmark_arch(recipe, s.inputs[0])
    return str(s.params.get("arch", "landmark_cnn"))


def overrides(det_arch: str, lm_arch: str) -> dict[str, dict[str, Any]]:
    """What a bundle's config differs in from ``train.default_config``: an ``_pt`` net's pretrained input
    scaling, and the landmark architecture."""
    from model_training.pretrained import PRETRAINED_MEAN, PRETRAINED_STD

    scaling = {"mean": list(PRETRAINED_MEAN), "std": list(PRETRAINED_STD)}
    out: dict[str, dict[str, Any]] = {"detector": {}, "landmarks": {"arch": lm_arch}}
    if det_arch.endswith("_pt"):
        out["detector"].update(scaling)
    if lm_arch.endswith("_pt"):
        out["landmarks"].update(scaling)
    return out


def config_for(det_arch: str, lm_arch: str = "landmark_cnn", version: str = "0.0.0") -> dict[str, Any]:
    from model_training.train import default_config

    config = default_config(version=version, detector_arch=det_arch)
    for part, values in overrides(det_arch, lm_arch).items():
        config[part].update(values)
    return config


def _review(stage: Stage) -> tuple[bool, int | None]:
    """(``reviewed``, ``rounds``) of ``data.load_split`` for a stage: ``review_rounds`` absent = every round."""
    rounds = stage.params.get("review_rounds")
    return (True, None) if rounds is None else (rounds > 0, rounds)


def _labels_of(recipe: Recipe, name: str) -> Stage:
    """The training stage whose labels a (possibly averaged) stage saw."""
    s = recipe[name]
    return _labels_of(recipe, s.inputs[0]) if s.kind == "average" else s


def stage_weights_in(recipe: Recipe, ref: str, root: Path, out: Path, part: str) -> Path:
    """Gluon weights of ``ref``: an earlier stage's, or a bundle's ``part`` converted (``starts.params_from_bundle``)."""
    if not ref.startswith(BUNDLE_PREFIX):
        return weights(root, ref)
    from model_training.starts import params_from_bundle

    bundle = _bundle_path(ref)
    arch = json.loads((bundle / "model.json").read_text())[part]["arch"]
    if not out.is_file():
        shape = (1, 3, 64, 128) if part == "landmarks" else (1, 3, 128, 192)
        params_from_bundle(bundle, part, arch, out, shape)
    return out


def train_stage(recipe: Recipe, name: str, data_root: Path, out_dir: Path, iterations: int | None = None,
                seed: int | None = None, synth_p: float | None = None, threads: int = 0,
                pretrained_root: Path | None = None, corrections: Path | None = None) -> Path:
    """Run one training (or averaging) row into ``out_dir``; the rows it reads are its siblings.
    ``corrections``: a ``plateveil models corrections export`` folder, read as one more data folder."""
    from model_training import mine
    from model_training import train as trainer
    from model_training.augment import load_photos
    from model_training.data import load_split
    from model_training.synth.plates import LAYOUTS

    stage = recipe[name]
    if stage.kind not in TRAINED:
        raise ValueError(f"{recipe.name} stage {name!r} is a {stage.kind} step, not a training stage")
    out_dir = Path(out_dir)
    root = out_dir.parent
    if stage.kind == "average":
        if (iterations, seed, synth_p) != (None, None, None):
            raise ValueError(f"stage {name!r} averages trained stages: --iterations, --seed and --synth-p do not "
                             "apply to it")
        part = _model_of(recipe, name)
        out_dir.mkdir(parents=True, exist_ok=True)
        sources = [stage_weights_in(recipe, s, root, out_dir / f"{_tag(s)}.params", part)
                   if s.startswith(BUNDLE_PREFIX) else root / s / "final.params" for s in stage.inputs]
        missing = [str(p) for p in sources if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"stage {name!r} averages {', '.join(stage.inputs)}: train them first "
                                    f"({', '.join(missing)} missing)")
        out_dir.mkdir(parents=True, exist_ok=True)
        trainer.average_params(sources, out_dir / "final.params")
        (out_dir / "summary.json").write_text(json.dumps(
            {"stage": name, "model": _model_of(recipe, name), **stage.params, "average": list(stage.inputs), "sources": list(map(str, sources))}, indent=2))
        return out_dir

    r = dict(stage.params)
    model = stage.kind
    start, mined_files = (stage.inputs[:1], stage.inputs[1:]) if stage.inputs else ((), ())
    if start == ("scratch",):
        start = ()
    init_from: Path | None = None
    if start and start[0] == "imagenet":
        from model_training.nets import LANDMARK_BACKBONES
        from model_training.starts import BACKBONE, imagenet_init

        init_from = out_dir / "init.params"
        if not init_from.is_file():
            if model == "detector":
                imagenet_init(r["arch"], BACKBONE, init_from, r["seed"], pretrained_root)
            else:
                imagenet_init(r["arch"], LANDMARK_BACKBONES[r["arch"]], init_from, r["seed"], pretrained_root,
                              input_shape=(1, 3, 64, 128))
    elif start and start[0].startswith(BUNDLE_PREFIX):
        init_from = stage_weights_in(recipe, start[0], root, out_dir / "init.params", model)
    elif start:
        init_from = weights(root, start[0])
        if not init_from.is_file():
            raise FileNotFoundError(f"stage {name!r} starts from {start[0]!r}, but {init_from} does not exist: "
                                    f"train that stage first (into {root / start[0]})")
    reviewed, rounds = _review(stage)
    extra: dict[str, Any] = {"corrections": corrections} if corrections else {}
    train_samples, _ = load_split(data_root, reviewed=reviewed, rounds=rounds, **extra)
    photos = load_photos(train_samples)
    hard: list = []
    for f in mined_files:
        rows = mine.load(root / f)
        if not rows:
            raise FileNotFoundError(f"stage {name!r} needs detector false positives in {root / f}: run the mining "
                                    f"row that makes it (`plateveil models mine --out {root / f}`)")
        hard += rows
    # a mined "false positive" on a plate that the labels used here have (a reviewed one), or on an ignore
    # region (an unsure plate, labels/repairs.json), is no negative
    n_mined = len(hard)
    hard = [(i, box) for i, box in hard if mine.off_labels(box, photos[i])]
    logger.info("training %s on %d photos (%d plates) from %s", name, len(photos),
                sum(len(p.boxes) for p in photos), data_root)
    if model == "detector":
        config = config_for(detector_arch(recipe, name))
        if (init_from is not None and start and not start[0].startswith(BUNDLE_PREFIX) and start[0] != "imagenet"
                and detector_arch(recipe, start[0]) != r["arch"]):
            # a detector with other anchor shapes starts from the trained one's backbone and nearest heads
            init_from = trainer.adapt_detector_params(init_from, detector_arch(recipe, start[0]), r["arch"],
                                                      out_dir / "init.params", config["detector"]["box_stds"])
    else:
        config = config_for(_first_detector_arch(recipe), r.get("arch", "landmark_cnn"))
    seed = r["seed"] if seed is None else seed
    opts = trainer.TrainOptions(out_dir=out_dir, iterations=iterations or r["iterations"], batch_size=r["batch_size"],
                                lr=r["lr"], warmup=r["warmup"], checkpoint_every=r["checkpoint_every"], seed=seed,
                                threads=threads, init_from=init_from)
    sp = r["synth_p"] if synth_p is None else synth_p
    r["layouts"] = list(r.get("layouts") or LAYOUTS)
    summary = {"stage": name, "model": model, "data_root": str(data_root), "train_photos": len(photos),
               "train_plates": int(sum(len(p.boxes) for p in photos)), **r, "synth_p": sp,
               "iterations": opts.iterations, "seed": seed, "init_from": str(init_from) if init_from else None,
               "hard_negatives": len(hard), "hard_negatives_on_plates_dropped": n_mined - len(hard)}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    if model == "detector":
        trainer.train_detector(photos, config, opts, synth_p=sp, crop=r["crop"], layouts=r["layouts"],
                               **({"source_weights": dict(r["source_weights"])} if r.get("source_weights") else {}))
    else:
        trainer.train_landmarks(photos, config, opts, synth_p=sp, hard_negatives=hard,
                                lowres_p=r.get("lowres_p", 0.0), layouts=r["layouts"],
                                context_p=r.get("context_p", 0.0), synth_neg_p=r.get("synth_neg_p", 0.0),
                                synth_neg_kinds=r.get("synth_neg_kinds"),
                                **({"corner_weight": r["corner_weight"]} if "corner_weight" in r else {}))
    return out_dir


def _model_of(recipe: Recipe, name: str) -> str:
    s = recipe[name]
    return _model_of(recipe, s.inputs[0]) if s.kind == "average" else s.kind


def _first_detector_arch(recipe: Recipe) -> str:
    from model_training.nets import DEFAULT_DETECTOR

    return next((detector_arch(recipe, s.name) for s in recipe.stages if s.kind == "detector"), DEFAULT_DETECTOR)


def build(recipe: Recipe, root: Path, det: str, lm: str, out: Path, version: str,
          thresholds: Mapping[str, Mapping[str, Any]] | None = None, extra: dict[str, Any] | None = None,
          flush_below: float | None = None) -> Path:
    """The bundle of detector row (or ``bundle:``) ``det`` and landmark row (or ``bundle:``) ``lm``, with ``thresholds`` merged
    into the config; ``flush_below``: the weights zeroed below it (``build.FLUSH_BELOW`` when None)."""
    from model_training import build as builder

    d_arch, l_arch = detector_arch(recipe, det), landmark_arch(recipe, lm)
    merged = overrides(d_arch, l_arch)
    for part, values in (thresholds or {}).items():
        merged.setdefault(part, {}).update(values)
    if not merged["detector"]:
        del merged["detector"]
    lm_params = stage_weights_in(recipe, lm, root, root / f"landmarks-{_tag(lm)}.params", "landmarks")
    kwargs: dict[str, Any] = {"overrides": merged} if thresholds or d_arch.endswith("_pt") or l_arch.endswith("_pt") \
        else {}
    if extra:
        kwargs["extra"] = extra
    if flush_below is not None:
        kwargs["flush_below"] = flush_below
    det_params = stage_weights_in(recipe, det, root, root / f"detector-{_tag(det)}.params", "detector")
    return builder.build_bundle(det_params, lm_params, out, version, detector_arch=d_arch, **kwargs)


def _tag(ref: str) -> str:
    return Path(ref[len(BUNDLE_PREFIX):]).name if ref.startswith(BUNDLE_PREFIX) else ref


def mine_step(recipe: Recipe, stage: Stage, data_root: Path, root: Path, version: str,
              corrections: Path | None = None) -> Path:
    from model_training.mine import mine_bundle

    det, lm = stage.inputs
    bundle = build(recipe, root, det, lm, root / f"bundle-{_tag(lm) if not lm.startswith(BUNDLE_PREFIX) else det}",
                   f"{version}-{_tag(lm) if not lm.startswith(BUNDLE_PREFIX) else det}",
                   flush_below=stage.params.get("flush_below"))
    reviewed, rounds = _review(_labels_of(recipe, det))
    # the same photos as training (the rows index them), corrections included
    mine_bundle(bundle, data_root, root / stage.name, reviewed=reviewed, rounds=rounds,
                min_score=float(stage.params.get("min_score", 0.15)),
                **({"corrections": corrections} if corrections else {}))
    return root / stage.name


def tune_step(recipe: Recipe, stage: Stage, data_root: Path, root: Path, version: str) -> Path:
    from model_training.tune import tune_bundle

    det, lm = stage.inputs
    untuned = build(recipe, root, det, lm, root / f"bundle-{_tag(det)}-{_tag(lm)}-untuned", f"{version}-untuned",
                    flush_below=stage.params.get("flush_below"))
    reference = stage.params.get("reference")
    kwargs: dict[str, Any] = {}
    if reference is not None:
        kwargs["reference"] = _bundle_path(BUNDLE_PREFIX + str(reference))
    if stage.params.get("fine"):
        kwargs["fine"] = True
    if stage.params.get("combine"):
        kwargs["det_weights"] = tuple(stage.params["combine"])
    if stage.params.get("min_det") is not None:
        kwargs["min_det"] = float(stage.params["min_det"])
    if stage.params.get("large_regions"):
        kwargs["large_regions"] = tuple(tuple(r) if r else None for r in stage.params["large_regions"])
    tune_bundle(untuned, data_root, root / stage.name, **kwargs)
    return root / stage.name


def training_record(recipe: Recipe, root: Path, tune_dir: Path) -> dict[str, Any]:
    """``model.json``'s ``training`` and ``tuning``: each row as it ran (the stage's ``summary.json`` and the
    table's settings; a mining row's detector and lowest score) and the sweep's reference and choice."""
    rows: dict[str, Any] = {}
    for s in recipe.stages:
        if not s.pipeline:
            continue
        if s.kind in ("detector", "landmarks"):
            summary = json.loads((root / s.name / "summary.json").read_text())
            rows[s.name] = {**{k: v for k, v in s.params.items() if k in ("arch", "lr", "batch_size", "seed")},
                            **({"init": s.inputs[0]} if s.inputs and (s.inputs[0] in STARTS
                                                                      or s.inputs[0].startswith(BUNDLE_PREFIX))
                               else {"init_from": s.inputs[0]} if s.inputs else {}),
                            **{k: summary[k] for k in ("train_photos", "train_plates", "iterations", "hard_negatives")
                               if k in summary}}
        elif s.kind == "average":
            rows[s.name] = {"average": list(s.inputs)}
        elif s.kind == "mine":
            rows[f"mine {s.name}"] = {"detector": s.inputs[0], "min_score": float(s.params.get("min_score", 0.15))}
    sweep = json.loads((tune_dir / "sweep.json").read_text())
    return {"training": {"recipe": f"{recipe.name} (plateveil models train --recipe {recipe.name} all)",
                         "stages": rows},
            "tuning": {"split": "val", "reference": sweep.get("reference"), "chosen": sweep["best"],
                       "rule": "the most plates hidden (recall@0.8) at no more spurious regions per photo than the "
                               "reference on the same photos, excess <= 0.3 (tune --reference --fine)"
                       if sweep.get("reference") else "tune.objective (fixed spurious and excess caps)"}}


def run(recipe: Recipe, data_root: Path, root: Path, version: str | None = None,
        pretrained_root: Path | None = None, corrections: Path | None = None) -> Path:
    """Every row of ``recipe`` in order into ``root``; what is done is kept (resumes). Returns the last bundle.
    ``corrections``: a corrections export read as one more data folder by the training and mining rows."""
    recipe.check()
    root = Path(root)
    version = version or recipe.version
    last: Path | None = None
    for stage in recipe.stages:
        if not stage.pipeline:
            continue
        if done(recipe, stage, root):
            logger.info("recipe %s: %s already done", recipe.name, stage.name)
            continue
        if stage.kind in TRAINED:
            given: dict[str, Any] = {"corrections": corrections} if corrections else {}
            train_stage(recipe, stage.name, data_root, root / stage.name, pretrained_root=pretrained_root, **given)
        elif stage.kind == "mine":
            mine_step(recipe, stage, data_root, root, version, **({"corrections": corrections} if corrections else {}))
        elif stage.kind == "tune":
            tune_step(recipe, stage, data_root, root, version)
        else:
            det, lm, tuned = stage.inputs
            thresholds = json.loads((root / tuned / "overrides.json").read_text())
            extra = training_record(recipe, root, root / tuned) if stage.params.get("record") else None
            last = build(recipe, root, det, lm, root / stage.name, version, thresholds, extra,
                         flush_below=stage.params.get("flush_below"))
    if last is None:
        raise ValueError(f"recipe {recipe.name} has no bundle row")
    return last


def table(stages: Mapping[str, Mapping[str, Any]], pipeline: Sequence[tuple[Any, ...]],
          mine_landmarks: str | None = None) -> list[Stage]:
    """Rows from a recipe written as a dict of training stages (keys ``model``, ``init`` / ``init_from``,
    ``hard_negatives``, ``average`` and the params) and a pipeline of steps: ``("train", stage)`` and
    ``("mine", detector, landmarks, file[, min_score])``, or with ``mine_landmarks`` (a ``bundle:`` whose landmark
    weights go with every mining detector) ``("mine", detector, file[, min_score])``. Stages the pipeline does
    not name become rows it skips (``pipeline=False``), after the row of their last input."""
    rows: list[Stage] = []

    def train_row(name: str, pipeline_row: bool) -> Stage:
        r = dict(stages[name])
        if "average" in r:
            params = {k: v for k, v in r.items() if k not in ("average", "model")}
            return Stage(name, "average", tuple(r["average"]), params, pipeline_row)
        init = r.pop("init_from", None) or {"imagenet": "imagenet", None: "scratch"}.get(r.get("init"), None)
        if init is None:   # "bundle-<version>": a shipped bundle's weights
            init = f"{BUNDLE_PREFIX}plateveil-plates-{str(r['init']).split('-', 1)[1]}"
        r.pop("init", None)
        mined = tuple(r.pop("hard_negatives", ()))
        kind = r.pop("model")
        inputs = (init, *mined) if init != "scratch" or mined else ()
        return Stage(name, kind, inputs, r, pipeline_row)

    for step in pipeline:
        if step[0] == "train":
            rows.append(train_row(step[1], True))
        elif mine_landmarks is None:
            _, det, lm, name, *rest = step
            rows.append(Stage(name, "mine", (det, lm), {"min_score": float(rest[0])} if rest else {}))
        else:
            _, det, name, *rest = step
            rows.append(Stage(name, "mine", (det, mine_landmarks), {"min_score": float(rest[0])} if rest else {}))
    named = {s.name for s in rows}
    for name in stages:
        if name not in named:
            row = train_row(name, False)
            made = [s.name for s in rows]
            at = max((made.index(i) for i in row.inputs if i in made), default=len(rows) - 1)
            rows.insert(at + 1, row)
    return rows
