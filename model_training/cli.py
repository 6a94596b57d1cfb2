"""``plateveil models ...``: preview, train, mine, tune, review, build, eval, pretrained, corrections export, and the
registry verbs.

The training verbs are here; ``publish``/``promote``/``rollback`` (with the quality gate) are
:mod:`model_training.registry_cli`, and the reading verbs ``list``/``show``/``unalias``/``workers``
are serving code (:mod:`model_store.commands`) that registry_cli registers beside its own. The heavy
modules (mxnet, cv2, the data readers) are imported inside each verb's handler.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from model_store.backends import BACKENDS, DEFAULT_BACKEND
from model_training.data import DEFAULT_DATA_ROOT, FORMATS
from model_training.registry_cli import register_registry_commands

logger = logging.getLogger(__name__)


def _labels_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels", default="reviewed", choices=["reviewed", "given"],
                        help="reviewed (default): the data's labels plus the plates they leave out "
                             "(model_training/labels/reviewed_plates*.json, every review round); "
                             "given: the data's labels as they are")


def _corrections_option(parser: argparse.ArgumentParser) -> None:
    import os

    from model_training.data import CORRECTIONS_ENV

    parser.add_argument("--corrections", type=Path, default=os.environ.get(CORRECTIONS_ENV) or None, metavar="DIR",
                        help="a `plateveil models corrections export` folder read as one more data folder (its "
                             "plates positives, its removed false concealments hard negatives); default "
                             f"${CORRECTIONS_ENV}, else none")


def register(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="plate models: preview, train, build, eval, registry")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="VERB")

    p = msub.add_parser("preview", help="contact sheet of generated and real samples with labels drawn")
    p.add_argument("--out", type=Path, default=Path("runs/preview.png"))
    p.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT, help="real photos to include (if present)")
    p.add_argument("--n-synth", type=int, default=12)
    p.add_argument("--n-real", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_preview)

    from model_training.recipes import RECIPES, recipe_names, stage_names

    t = msub.add_parser("train", help="train one stage of a recipe, or all of it (resumes)")
    t.add_argument("part", metavar="STAGE|all", choices=[*stage_names(), "all"],
                   help="a row of the recipe's stage table (model_training/recipe3.py for 3.0, recipe2.py for "
                        "2.0, recipe.py for 1.10; a stage starts from its sibling folders), or `all`: every row "
                        "(stages, mining, the threshold sweep and the bundle) under --out")
    t.add_argument("--recipe", default="3.0", choices=recipe_names(),
                   help=f"which recipe (default 3.0): {'; '.join(f'{k}: {v.description}' for k, v in RECIPES.items())}")
    t.add_argument("--version", default=None, help="bundle version (`all` only; default: the recipe's)")
    t.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT)
    t.add_argument("--pretrained", type=Path, default=None,
                   help="ImageNet weights folder (default: $PLATEVEIL_PRETRAINED_DIR or ../shared/pretrained)")
    t.add_argument("--out", type=Path, default=None, help="recipe root (default runs/train<recipe>; a stage: "
                                                          "<out>/<stage>)")
    t.add_argument("--iterations", type=int, default=None, help="default: the recipe's")
    t.add_argument("--synth-p", type=float, default=None, help="share of samples with synthetic plates")
    t.add_argument("--seed", type=int, default=None, help="default: the recipe's")
    _corrections_option(t)
    t.set_defaults(func=_train)

    from model_training.recipe2 import RECIPE_V2

    t2 = msub.add_parser("train2", help="the 2.0 recipe (= train --recipe 2.0): one stage, or all of it (resumes)")
    t2.add_argument("part", choices=[*RECIPE_V2, "all"],
                    help="2.0 stage (model_training/recipe2.py), or `all`: the stages, the mining, the "
                         "threshold sweep and the bundle under --out")
    t2.add_argument("--version", default=None, help="bundle version (`all` only; default 2.0.0)")
    t2.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT)
    t2.add_argument("--pretrained", type=Path, default=None,
                    help="ImageNet weights folder (default: $PLATEVEIL_PRETRAINED_DIR or ../shared/pretrained)")
    t2.add_argument("--out", type=Path, default=Path("runs/train2"), help="recipe root (a stage: <out>/<stage>)")
    t2.add_argument("--iterations", type=int, default=None, help="one stage only; default: the recipe's")
    _corrections_option(t2)
    t2.set_defaults(func=_train2)

    m = msub.add_parser("mine", help="detector false positives on the training photos (for landmarks-ft)")
    m.add_argument("--model-dir", type=Path, required=True, help="bundle whose detector is mined")
    m.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT)
    m.add_argument("--min-score", type=float, default=0.15)
    m.add_argument("--out", type=Path, default=Path("runs/train/hard_negatives.json"))
    _labels_option(m)
    _corrections_option(m)
    m.set_defaults(func=_mine)

    u = msub.add_parser("tune", help="choose post-processing thresholds on the validation split")
    u.add_argument("--model-dir", type=Path, required=True, help="bundle to tune (its thresholds are ignored)")
    u.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT)
    u.add_argument("--max-spurious", type=float, default=0.05)
    u.add_argument("--max-excess", type=float, default=0.3)
    u.add_argument("--out", type=Path, default=Path("runs/tune"),
                   help="writes sweep.json (every setting) and overrides.json (for `models build --overrides`)")
    u.add_argument("--reference", type=Path, default=None,
                   help="bundle (e.g. the shipped one) whose spurious regions per photo on the same photos cap "
                        "the choice: the most plates hidden at no more false concealments than it")
    u.add_argument("--fine", action="store_true", help="the 2.0 recipe's finer threshold grid")
    _labels_option(u)
    u.set_defaults(func=_tune)

    r = msub.add_parser("review", help="contact sheets of unlabelled plate-like regions; --accept adds plates "
                                       "to the latest review round in model_training/labels/")
    r.add_argument("--model-dir", type=Path, default=None, help="bundle that proposes the regions (default: shipped)")
    r.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT, help="data root (all its photos, both splits)")
    r.add_argument("--min-det", type=float, default=0.2)
    r.add_argument("--min-lm", type=float, default=0.5)
    r.add_argument("--out", type=Path, default=Path("runs/review"), help="sheets and candidates.json")
    r.add_argument("--accept", default=None, metavar="N,N,...",
                   help="the sheet numbers that are plates: add them (from --out/candidates.json)")
    r.add_argument("--labels-file", type=Path, default=None,
                   help="where --accept adds (default: the latest review round, labels/reviewed_plates-2.json)")
    r.set_defaults(func=_review)

    from model_training.repair import register as register_repair

    register_repair(msub)

    b = msub.add_parser("build", help="export trained params to a model bundle (MXNet symbol+params and ONNX)")
    b.add_argument("--detector", type=Path, required=True, help="detector .params")
    b.add_argument("--landmarks", type=Path, required=True, help="landmark .params")
    b.add_argument("--version", required=True)
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--overrides", type=Path, default=None, help="JSON {detector: {...}, landmarks: {...}}")
    b.add_argument("--detector-arch", default=None,
                   help="the detector's architecture (its anchor shapes): ssd_mnet025_fpn (default), "
                        "ssd_mnet025_fpn_sq, ...")
    b.set_defaults(func=_build)

    e = msub.add_parser("eval", help="run the full pipeline on a labelled folder and report the metrics")
    e.add_argument("--data", type=Path, required=True, help="folder of labelled photos (or a split name: val)")
    e.add_argument("--format", default="auto", choices=FORMATS)
    e.add_argument("--model-dir", type=Path, default=None, help="bundle folder (default: shipped)")
    e.add_argument("--compare", type=Path, action="append", default=[], metavar="BUNDLE",
                   help="also evaluate this bundle on the same photos (repeatable): per-model reports and sheets "
                        "in <out>/<model>/, the side-by-side table in <out>/comparison.md")
    e.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT, help="data root of --data val")
    e.add_argument("--backend", default=DEFAULT_BACKEND, choices=BACKENDS)
    e.add_argument("--out", type=Path, default=Path("runs/eval"), help="where the report JSON and sheet go")
    _labels_option(e)
    e.set_defaults(func=_eval)

    w = msub.add_parser("pretrained", help="check the ImageNet MobileNets of ../shared/pretrained: top-5 classes of "
                                           "each imported net on the check photos")
    w.add_argument("--dir", type=Path, default=None,
                   help="the pretrained folder (default: $PLATEVEIL_PRETRAINED_DIR, else ../shared/pretrained)")
    w.set_defaults(func=_pretrained)

    c = msub.add_parser("corrections", help="reviewers' corrections (the /review pages) as training data")
    csub = c.add_subparsers(dest="corrections_command", required=True, metavar="VERB")
    x = csub.add_parser("export", help="write every corrected photo (original + corners labels, removed false "
                                       "positives as negatives) to DIR, a corners-format data folder")
    x.add_argument("dir", type=Path, help="output folder (images/, corners/, negatives.json, manifest.json)")
    x.add_argument("--since", default=None, metavar="YYYY-MM-DD",
                   help="only jobs concealed from this day on (default: the whole output prefix)")
    x.set_defaults(func=_corrections_export)

    register_registry_commands(msub)


def _corrections_export(args: argparse.Namespace) -> int:
    from model_training.corrections import export_main

    summary = export_main(args.dir, args.since)
    print(f"{summary.jobs} corrected photos ({summary.plates} plates, {summary.added} drawn by reviewers, "
          f"{summary.negatives} removed false positives) of {summary.sidecars_read} sidecars: {summary.out}")
    print(f"train on them: copy {summary.out} under the data root (e.g. ../shared/data/plateveil-corrections/)")
    return 0


def _pretrained(args: argparse.Namespace) -> int:
    from model_training.pretrained import PretrainedError, check_report

    try:
        lines = check_report(args.dir)
    except PretrainedError as exc:
        raise SystemExit(f"plateveil models pretrained: {exc}") from None
    print("\n".join(lines))
    return 0


def _preview(args: argparse.Namespace) -> int:
    from model_training import synth
    from model_training.data import load_folder

    real = []
    if args.data and Path(args.data).is_dir() and args.n_real > 0:
        folders = [p for p in sorted(Path(args.data).iterdir()) if p.is_dir()]
        per = max(1, args.n_real // max(1, len(folders)))
        for folder in folders:
            for s in load_folder(folder)[:per]:
                real.append((s.image, s.boxes, s.corners, f"real: {s.source}/{s.path.name}"))
    out = synth.make_preview(args.out, real_samples=real, n_synth=args.n_synth, seed=args.seed)
    print(f"wrote {out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from model_training.recipes import RECIPES, default_root
    from model_training.runner import TRAINED, run, train_stage

    recipe = RECIPES[args.recipe]
    root = args.out or default_root(args.recipe)
    if args.part == "all":
        one_stage = [flag for flag, value in (("--iterations", args.iterations), ("--seed", args.seed),
                                              ("--synth-p", args.synth_p)) if value is not None]
        if one_stage:
            raise SystemExit(f"plateveil models train all: {', '.join(one_stage)} apply to one stage; `all` trains "
                             f"every stage as recipe {args.recipe}'s table sets it (change the table, or train one "
                             "stage)")
        bundle = run(recipe, args.data, root, args.version, pretrained_root=args.pretrained,
                     corrections=args.corrections)
        print(f"recipe {args.recipe} done: {bundle}  (evaluate: make eval ARGS='--model-dir {bundle}')")
        return 0
    names = recipe.names(TRAINED)
    if args.part not in names:
        raise SystemExit(f"recipe {args.recipe} has no training stage {args.part!r}; valid: {', '.join(names)} "
                         "(another recipe's? --recipe)")
    out = train_stage(recipe, args.part, args.data, root / args.part, iterations=args.iterations, seed=args.seed,
                      synth_p=args.synth_p, pretrained_root=args.pretrained, corrections=args.corrections)
    print(f"trained {args.part}: {out} (final.params, metrics.jsonl, curves.png)")
    return 0


def _train2(args: argparse.Namespace) -> int:
    """``models train2``: the 2.0 recipe's name from before ``--recipe`` (``train --recipe 2.0``)."""
    args.recipe, args.seed, args.synth_p = "2.0", None, None
    return _train(args)


def _mine(args: argparse.Namespace) -> int:
    from model_training.mine import mine_bundle

    tag, n_photos, rows = mine_bundle(args.model_dir, args.data, args.out, min_score=args.min_score,
                                      reviewed=args.labels == "reviewed", corrections=args.corrections)
    print(f"{len(rows)} hard negatives on {len({r['photo'] for r in rows})} of {n_photos} training photos "
          f"(detector {tag}, score >= {args.min_score}): {args.out}")
    return 0


def _tune(args: argparse.Namespace) -> int:
    from model_training.tune import tune_bundle

    tag, best = tune_bundle(args.model_dir, args.data, args.out, args.max_spurious, args.max_excess,
                            reviewed=args.labels == "reviewed", reference=args.reference, fine=args.fine)
    print(f"best setting for {tag}: " + ", ".join(f"{k}={v:.3g}" for k, v in best.items()))
    print(f"wrote {args.out / 'sweep.json'} and {args.out / 'overrides.json'}")
    return 0


def _build(args: argparse.Namespace) -> int:
    from model_training.build import build_bundle
    from model_training.nets import DEFAULT_DETECTOR

    overrides = json.loads(args.overrides.read_text()) if args.overrides else None
    out = build_bundle(args.detector, args.landmarks, args.out, args.version, overrides=overrides,
                       detector_arch=args.detector_arch or DEFAULT_DETECTOR)
    print(f"wrote bundle {out}")
    return 0


def _review(args: argparse.Namespace) -> int:
    from model_training import review
    from model_training.data import REVIEWED_PLATES, load_reviewed, load_split, with_reviewed

    labels = args.labels_file or REVIEWED_PLATES   # where --accept adds; the plates of every round are not shown
    if args.accept is not None:
        try:
            numbers = [int(n) for n in args.accept.replace(" ", "").split(",") if n]
        except ValueError:
            raise SystemExit(f"--accept takes sheet numbers separated by commas, not {args.accept!r}") from None
        added, known = review.accept(args.out / "candidates.json", numbers, labels)
        print(f"{added} plates added to {labels} ({known} were there already)")
        return 0
    from model_store.runtime import load_model

    model = load_model(args.model_dir, backend="onnx")
    train, val = load_split(args.data, reviewed=False)
    samples = train + val
    if args.labels_file is None:
        reviewed = load_reviewed()   # every round
    else:
        reviewed = load_reviewed(labels) if labels.is_file() else {}
    cands = review.find_candidates(model, with_reviewed(samples, reviewed), args.min_det, args.min_lm)
    sheets = review.write_sheets(cands, args.out)
    print(f"{len(cands)} unlabelled plate-like regions on {len(samples)} photos ({model.tag}): "
          f"{len(sheets)} sheets in {args.out}; add the plates with --accept N,N,...")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from model_store.runtime import load_model
    from model_training.data import load_folder, load_split, with_reviewed
    from model_training.evaluate import (
        evaluate_samples,
        format_comparison,
        format_table,
        worst_cases_sheet,
    )

    reviewed = args.labels == "reviewed"
    if str(args.data) == "val":
        samples = load_split(args.data_root, reviewed=reviewed)[1]
    else:
        samples = load_folder(args.data, args.format)
        samples = with_reviewed(samples) if reviewed else samples
    dirs = [args.model_dir, *args.compare]
    reports: dict[str, dict] = {}
    for model_dir in dirs:
        model = load_model(model_dir, backend=args.backend)
        report = evaluate_samples(model, samples)
        out = args.out / model.tag if args.compare else args.out
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps({"model": model.tag, "labels": args.labels,
                                                     **report.to_dict()}, indent=2))
        sheet = worst_cases_sheet(report, out / "worst_cases.png")
        reports[model.tag] = report.to_dict()
        print(f"model {model.tag} backend {args.backend} labels {args.labels}")
        print(format_table(report))
        print(f"report: {out / 'report.json'}  worst cases: {sheet}")
    if args.compare:
        table = format_comparison(reports)
        (args.out / "comparison.md").write_text(table + "\n")
        print(table)
        print(f"side by side: {args.out / 'comparison.md'}")
    return 0
