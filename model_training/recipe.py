"""The shipped training recipe: ``plateveil models train STAGE`` and ``make train``.

Twenty-six stages, each a run folder under one root (``runs/train`` for ``make train``):

1. ``detector``: the SSD from scratch on real + synthetic crops;
2. ``detector-ft``, 3. ``detector-ft2``, 4. ``detector-ft3``: three more cosine cycles, each warm-started from
   the one before with a new seed (the detector's loss was still falling when each cycle's learning rate ran out);
5. ``landmarks``: the corner/score CNN from scratch, negatives from random crops;
6. ``landmarks-ft``: warm-started from (5) with the detector's own false positives on the training photos
   (``plateveil models mine`` with a bundle of (1) + (5) writes ``<root>/hard_negatives.json``), so that the
   score learns to reject what the detector actually confuses with plates;
7. ``landmarks-ft2``: from (6), adding the false positives of the bundle (2) + (6) (``hard_negatives-ft.json``);
8. ``landmarks-ft3``: from (7), adding those of (3) + (7) (``hard_negatives-ft2.json``), and with 30% of the
   crops of both classes degraded to the look of an 8-40 px plate (``augment.low_resolution``): small plates
   in small photos were the misses the score rejected;
9. ``landmarks-ft4``: from (8), adding those of (4) + (8) (``hard_negatives-ft3.json``);
10. ``detector-ft4``: a fifth cycle from (4), the first with the reviewed labels (``review_rounds`` 1: the
    plates the data's labels leave out, ``model_training/labels/``), so the neighbouring cars' plates stop being
    background;
11. ``landmarks-ft5``: from (9), with the reviewed labels, adding the false positives of (10) + (9)
    (``hard_negatives-ft4.json``); mined rows on a reviewed plate (those of the earlier files) are dropped;
12. ``detector-sq``: the detector with a fourth anchor shape per width, w/h = 1 (``ssd_mnet025_fpn_sq``), warm-
    started from (10) (``train.adapt_detector_params``: the new shape starts as a copy of the w/h-2 one), for the
    square-looking plates of the Kaggle and Open Images photos (US and Brazilian plates at an angle, two-line
    and square plates) that no w/h 2-5 anchor overlapped well;
13. ``landmarks-ft6``: from (11), adding the false positives of (12) + (11) (``hard_negatives-sq.json``);
14. ``detector-sq2``: a second cycle of (12), the first with the second review round's plates
    (``review_rounds``: 2; mostly the further cars' plates on the dash-cam frames);
15. ``landmarks-ft7``: from (13), adding the false positives of (14) + (13) (``hard_negatives-sq2.json``);
16. ``detector-sq3``: a third cycle of (12), from (14) with a new seed;
17. ``detector-avg``: the mean of the weights of (14) and (16) (``train.average_params``, no training; what
    averaging gained: MODEL_CARD.md);
18. ``landmarks-ft8``: from (15), adding the false positives of (14) + (15) (``hard_negatives-sq2-ft7.json``), and
    drawing every synthetic layout, the ``dark`` one (light characters on a dark plate) included;
19. ``landmarks-ft8b``: (18) with another seed;
20. ``landmarks-avg``: the mean of (18) and (19);
21. ``landmarks-ft9``: from (20), with two more kinds of negative crop (``augment.LandmarkSampler``): the
    generator's own non-plates (signs, dealer badges, bumper lettering, logos, grilles, phone numbers), pasted
    onto a training photo and cropped like a detection (40% of the negatives that are not mined ones), and
    plate-sized boxes beside a labelled plate (half of the rest: tail lights, badges, model names). Lettering on
    a car body was what the score most often took for a plate, and until here the generator's non-plates
    reached the landmark model only when a random crop fell on one;
22. ``landmarks-ft9b``: (21) with another seed;
23. ``landmarks-avg9``: the mean of (21) and (22);
24. ``detector-sq4``: a fourth cycle of (12), from (17) with a new seed, the first detector stage to draw the
    ``dark`` synthetic layout (light characters on a dark plate: some of the plates it scored under threshold);
25. ``detector-avg2``: the mean of (14), (16) and (24): averaged over three cycles, the detector sends fewer false
    positives on at about the same recall (MODEL_CARD.md);
26. ``landmarks-avg10``: the mean of (18), (19), (21) and (22), i.e. of (20) and (23), no training: (23)'s car-body
    negatives made the score stricter for clean generated plates of every layout, and the midpoint keeps most of
    what they bought on the validation photos while taking back much of that strictness (MODEL_CARD.md).

``TABLE`` is this recipe as rows of the one recipe runner (``runner.py``): the stages and mining steps in order
(``PIPELINE``), then the threshold sweep (``model_training.tune``) and the bundle of (25) + (26);
``plateveil models train --recipe 1.10 all`` (``make train-1.10``, ``run_all``) runs it.
Measured on the 2-core development machine: see MODEL_CARD.md.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# "review_rounds": how many rounds of reviewed plates (data.REVIEW_ROUNDS, model_training/labels/) the stage sees
# added to the data's labels: the stages trained before a round existed did without it, and the recipe
# reproduces what was shipped
# "layouts": the synthetic plate layouts the stage draws (None: every one of synth.LAYOUTS); the stages trained
# before the "dark" layout existed keep the six they were trained with
_SIX_LAYOUTS = ("eu", "ru", "us", "br_mercosur", "uk_rear", "two_line")
_DETECTOR = {"model": "detector", "arch": "ssd_mnet025_fpn", "batch_size": 16, "lr": 2e-3, "checkpoint_every": 200,
             "synth_p": 0.3, "crop": 320, "review_rounds": 0, "layouts": _SIX_LAYOUTS}
_LANDMARKS = {"model": "landmarks", "batch_size": 64, "synth_p": 0.6, "review_rounds": 0, "layouts": _SIX_LAYOUTS}
# the generator's non-plates that the landmark stages draw as negatives: those found on and around cars. Signs,
# stickers, price tags and phone numbers (characters on a light rectangle) are left to the detector: with them the
# score rejected clean, sharp plates (the drawn scenes of plateveil_ops.samples)
_CAR_NEGATIVES = ("badge", "bumper_text", "grille", "reflection", "logo")
# the mining steps' outputs, in PIPELINE order; each landmark fine-tune learns from all those before it
MINED = ["hard_negatives.json", "hard_negatives-ft.json", "hard_negatives-ft2.json", "hard_negatives-ft3.json",
         "hard_negatives-ft4.json", "hard_negatives-sq.json", "hard_negatives-sq2.json", "hard_negatives-sq2-ft7.json"]

RECIPE: dict[str, dict[str, Any]] = {
    "detector": {**_DETECTOR, "iterations": 2400, "warmup": 200, "seed": 0},
    "detector-ft": {**_DETECTOR, "init_from": "detector", "iterations": 3000, "warmup": 100, "seed": 1},
    "detector-ft2": {**_DETECTOR, "init_from": "detector-ft", "iterations": 2000, "warmup": 100, "seed": 2},
    "detector-ft3": {**_DETECTOR, "init_from": "detector-ft2", "iterations": 2000, "warmup": 100, "seed": 4},
    "detector-ft4": {**_DETECTOR, "init_from": "detector-ft3", "iterations": 2000, "warmup": 100, "seed": 6,
                     "review_rounds": 1},
    "detector-sq": {**_DETECTOR, "arch": "ssd_mnet025_fpn_sq", "init_from": "detector-ft4", "iterations": 2400,
                    "warmup": 100, "seed": 8, "review_rounds": 1},
    "detector-sq2": {**_DETECTOR, "arch": "ssd_mnet025_fpn_sq", "init_from": "detector-sq", "iterations": 2400,
                     "warmup": 100, "seed": 10, "review_rounds": 2},
    "detector-sq3": {**_DETECTOR, "arch": "ssd_mnet025_fpn_sq", "init_from": "detector-sq2", "iterations": 2400,
                     "warmup": 100, "seed": 12, "review_rounds": 2},
    "detector-avg": {"model": "detector", "arch": "ssd_mnet025_fpn_sq", "average": ["detector-sq2", "detector-sq3"]},
    "detector-sq4": {**_DETECTOR, "arch": "ssd_mnet025_fpn_sq", "init_from": "detector-avg", "iterations": 2000,
                     "warmup": 100, "seed": 14, "review_rounds": 2, "layouts": None},
    "detector-avg2": {"model": "detector", "arch": "ssd_mnet025_fpn_sq",
                      "average": ["detector-sq2", "detector-sq3", "detector-sq4"]},
    "landmarks": {**_LANDMARKS, "iterations": 2000, "lr": 2e-3, "warmup": 200, "checkpoint_every": 250, "seed": 0},
    "landmarks-ft": {**_LANDMARKS, "init_from": "landmarks", "hard_negatives": MINED[:1], "iterations": 1200,
                     "lr": 1e-3, "warmup": 50, "checkpoint_every": 200, "seed": 1},
    "landmarks-ft2": {**_LANDMARKS, "init_from": "landmarks-ft", "hard_negatives": MINED[:2], "iterations": 800,
                      "lr": 5e-4, "warmup": 50, "checkpoint_every": 200, "seed": 2},
    "landmarks-ft3": {**_LANDMARKS, "init_from": "landmarks-ft2", "hard_negatives": MINED[:3], "iterations": 1500,
                      "lr": 5e-4, "warmup": 50, "checkpoint_every": 250, "lowres_p": 0.3, "seed": 3},
    "landmarks-ft4": {**_LANDMARKS, "init_from": "landmarks-ft3", "hard_negatives": MINED[:4], "iterations": 1500,
                      "lr": 5e-4, "warmup": 50, "checkpoint_every": 250, "lowres_p": 0.3, "seed": 5},
    "landmarks-ft5": {**_LANDMARKS, "init_from": "landmarks-ft4", "hard_negatives": MINED[:5], "iterations": 1500,
                      "lr": 5e-4, "warmup": 50, "checkpoint_every": 250, "lowres_p": 0.3, "seed": 7,
                      "review_rounds": 1},
    "landmarks-ft6": {**_LANDMARKS, "init_from": "landmarks-ft5", "hard_negatives": MINED[:6], "iterations": 1500,
                      "lr": 5e-4, "warmup": 50, "checkpoint_every": 250, "lowres_p": 0.3, "seed": 9,
                      "review_rounds": 1},
    "landmarks-ft7": {**_LANDMARKS, "init_from": "landmarks-ft6", "hard_negatives": MINED[:7], "iterations": 1500,
                      "lr": 5e-4, "warmup": 50, "checkpoint_every": 250, "lowres_p": 0.3, "seed": 11,
                      "review_rounds": 2},
    "landmarks-ft8": {**_LANDMARKS, "init_from": "landmarks-ft7", "hard_negatives": MINED[:8], "iterations": 1500,
                      "lr": 5e-4, "warmup": 50, "checkpoint_every": 250, "lowres_p": 0.3, "seed": 13,
                      "review_rounds": 2, "layouts": None},
    "landmarks-ft8b": {**_LANDMARKS, "init_from": "landmarks-ft7", "hard_negatives": MINED[:8], "iterations": 1500,
                       "lr": 5e-4, "warmup": 50, "checkpoint_every": 250, "lowres_p": 0.3, "seed": 17,
                       "review_rounds": 2, "layouts": None},
    "landmarks-avg": {"model": "landmarks", "average": ["landmarks-ft8", "landmarks-ft8b"]},
    "landmarks-ft9": {**_LANDMARKS, "init_from": "landmarks-avg", "hard_negatives": MINED[:8], "iterations": 1500,
                      "lr": 5e-4, "warmup": 50, "checkpoint_every": 250, "lowres_p": 0.3, "seed": 29,
                      "review_rounds": 2, "layouts": None, "context_p": 0.5, "synth_neg_p": 0.4,
                      "synth_neg_kinds": _CAR_NEGATIVES},
    "landmarks-ft9b": {**_LANDMARKS, "init_from": "landmarks-avg", "hard_negatives": MINED[:8], "iterations": 1500,
                       "lr": 5e-4, "warmup": 50, "checkpoint_every": 250, "lowres_p": 0.3, "seed": 31,
                       "review_rounds": 2, "layouts": None, "context_p": 0.5, "synth_neg_p": 0.4,
                       "synth_neg_kinds": _CAR_NEGATIVES},
    "landmarks-avg9": {"model": "landmarks", "average": ["landmarks-ft9", "landmarks-ft9b"]},
    "landmarks-avg10": {"model": "landmarks",
                        "average": ["landmarks-ft8", "landmarks-ft8b", "landmarks-ft9", "landmarks-ft9b"]},
}


def stage_weights(run_dir: Path) -> Path:
    """The weights a finished (or interrupted) stage leaves: final.params, else the last checkpoint."""
    from model_training.runner import weights

    return weights(run_dir.parent, run_dir.name)


def train(part: str, data_root: Path, out_dir: Path, iterations: int | None = None, seed: int | None = None,
          synth_p: float | None = None, threads: int = 0) -> Path:
    """Run one recipe stage into ``out_dir``; a stage with ``init_from`` starts from its sibling folder."""
    from model_training.runner import train_stage

    if part not in RECIPE:
        raise ValueError(f"unknown recipe stage {part!r}; valid: {', '.join(RECIPE)}")
    return train_stage(TABLE, part, data_root, out_dir, iterations=iterations, seed=seed, synth_p=synth_p,
                       threads=threads)


# The whole recipe in order: ("train", stage) or ("mine", detector stage, landmark stage, output file). Each
# mining step runs the bundle of those two stages over the training photos (``model_training.mine``), with the
# labels its detector stage was trained on.
PIPELINE: list[tuple[str, ...]] = [
    ("train", "detector"), ("train", "detector-ft"), ("train", "detector-ft2"), ("train", "detector-ft3"),
    ("train", "detector-ft4"), ("train", "detector-sq"), ("train", "detector-sq2"), ("train", "detector-sq3"),
    ("train", "detector-avg"), ("train", "detector-sq4"), ("train", "detector-avg2"),
    ("train", "landmarks"),
    ("mine", "detector", "landmarks", MINED[0]),
    ("train", "landmarks-ft"),
    ("mine", "detector-ft", "landmarks-ft", MINED[1]),
    ("train", "landmarks-ft2"),
    ("mine", "detector-ft2", "landmarks-ft2", MINED[2]),
    ("train", "landmarks-ft3"),
    ("mine", "detector-ft3", "landmarks-ft3", MINED[3]),
    ("train", "landmarks-ft4"),
    ("mine", "detector-ft4", "landmarks-ft4", MINED[4]),
    ("train", "landmarks-ft5"),
    ("mine", "detector-sq", "landmarks-ft5", MINED[5]),
    ("train", "landmarks-ft6"),
    ("mine", "detector-sq2", "landmarks-ft6", MINED[6]),
    ("train", "landmarks-ft7"),
    ("mine", "detector-sq2", "landmarks-ft7", MINED[7]),
    ("train", "landmarks-ft8"), ("train", "landmarks-ft8b"), ("train", "landmarks-avg"),
    ("train", "landmarks-ft9"), ("train", "landmarks-ft9b"), ("train", "landmarks-avg9"), ("train", "landmarks-avg10"),
]
SHIPPED = ("detector-avg2", "landmarks-avg10")   # the stages the shipped bundle is built from




def _table() -> Any:
    from model_training.runner import Recipe, Stage, table

    return Recipe("1.10", "1.10.0", (
        *table(RECIPE, PIPELINE),
        Stage("tune", "tune", SHIPPED),
        Stage("bundle", "bundle", (*SHIPPED, "tune")),
    ), description="the 1.10.0 recipe: the SSD and the landmark CNN from scratch, 26 stages, 8 mining steps")


TABLE = _table()   # the rows ``runner.run`` walks (``plateveil models train --recipe 1.10``)


def run_all(data_root: Path, root: Path, version: str) -> Path:
    """Every stage, mining step, the threshold sweep and the final bundle, into ``root``; what is already
    there (a stage's final.params, a mined file, the sweep) is kept, so a rerun after an interruption goes on
    where it stopped (an interrupted stage resumes from its checkpoint)."""
    from model_training.runner import run

    return run(TABLE, data_root, root, version)
