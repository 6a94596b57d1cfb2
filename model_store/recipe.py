"""The shipped training recipe: ``plateveil models train STAGE`` and ``make train``.

Five stages, each a run folder under one root (``runs/train`` for ``make train``):

1. ``detector``: the SSD from scratch on real + synthetic crops;
2. ``detector-ft``: a second cosine cycle warm-started from (1) with a new seed (the detector was still
   improving when the first cycle's learning rate ran out);
3. ``landmarks``: the corner/score CNN from scratch, negatives from random crops;
4. ``landmarks-ft``: warm-started from (3) with the detector's own false positives on the training photos
   (``plateveil models mine`` with a bundle of (1) + (3) writes ``<root>/hard_negatives.json``), so that the
   score learns to reject what the detector actually confuses with plates;
5. ``landmarks-ft2``: warm-started from (4) with those plus the false positives of the bundle (2) + (4)
   (``<root>/hard_negatives-ft.json``): the shipped detector's own mistakes.

Measured on the 2-core development machine: see MODEL_CARD.md.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

RECIPE: dict[str, dict[str, Any]] = {
    "detector": {"model": "detector", "iterations": 2400, "batch_size": 16, "lr": 2e-3, "warmup": 200,
                 "checkpoint_every": 200, "synth_p": 0.3, "crop": 320, "seed": 0},
    "detector-ft": {"model": "detector", "init_from": "detector", "iterations": 3000, "batch_size": 16, "lr": 2e-3,
                    "warmup": 100, "checkpoint_every": 200, "synth_p": 0.3, "crop": 320, "seed": 1},
    "landmarks": {"model": "landmarks", "iterations": 2000, "batch_size": 64, "lr": 2e-3, "warmup": 200,
                  "checkpoint_every": 250, "synth_p": 0.6, "seed": 0},
    "landmarks-ft": {"model": "landmarks", "init_from": "landmarks", "hard_negatives": ["hard_negatives.json"],
                     "iterations": 1200, "batch_size": 64, "lr": 1e-3, "warmup": 50, "checkpoint_every": 200,
                     "synth_p": 0.6, "seed": 1},
    "landmarks-ft2": {"model": "landmarks", "init_from": "landmarks-ft",
                      "hard_negatives": ["hard_negatives.json", "hard_negatives-ft.json"], "iterations": 800,
                      "batch_size": 64, "lr": 5e-4, "warmup": 50, "checkpoint_every": 200, "synth_p": 0.6,
                      "seed": 2},
}


def stage_weights(run_dir: Path) -> Path:
    """The weights a finished (or interrupted) stage leaves: final.params, else the last checkpoint."""
    final = run_dir / "final.params"
    return final if final.is_file() else run_dir / "checkpoint" / "net.params"


def train(part: str, data_root: Path, out_dir: Path, iterations: int | None = None, seed: int | None = None,
          synth_p: float | None = None, threads: int = 0) -> Path:
    """Run one recipe stage into ``out_dir``; a stage with ``init_from`` starts from its sibling folder."""
    from model_store import mine
    from model_store.augment import load_photos
    from model_store.data import load_split
    from model_store.train import TrainOptions, default_config, train_detector, train_landmarks

    if part not in RECIPE:
        raise ValueError(f"unknown recipe stage {part!r}; valid: {', '.join(RECIPE)}")
    r = dict(RECIPE[part])
    out_dir = Path(out_dir)
    init_from = None
    if r.get("init_from"):
        init_from = stage_weights(out_dir.parent / r["init_from"])
        if not init_from.is_file():
            raise FileNotFoundError(f"stage {part!r} starts from {r['init_from']!r}, but {init_from} does not exist: "
                                    f"train that stage first (into {out_dir.parent / r['init_from']})")
    hard: list = []
    for name in r.get("hard_negatives", []):
        hn_path = out_dir.parent / name
        rows = mine.load(hn_path)
        if not rows:
            raise FileNotFoundError(f"stage {part!r} needs detector false positives in {hn_path}: run "
                                    f"`plateveil models mine --out {hn_path}` with a bundle of the earlier stages")
        hard += rows
    train_samples, _ = load_split(data_root)
    photos = load_photos(train_samples)
    logger.info("training %s on %d photos (%d plates) from %s", part, len(photos),
                sum(len(p.boxes) for p in photos), data_root)
    config = default_config()
    seed = r["seed"] if seed is None else seed
    opts = TrainOptions(out_dir=out_dir, iterations=iterations or r["iterations"], batch_size=r["batch_size"],
                        lr=r["lr"], warmup=r["warmup"], checkpoint_every=r["checkpoint_every"], seed=seed,
                        threads=threads, init_from=init_from)
    sp = r["synth_p"] if synth_p is None else synth_p
    summary = {"stage": part, "data_root": str(data_root), "train_photos": len(photos),
               "train_plates": int(sum(len(p.boxes) for p in photos)), **r, "synth_p": sp,
               "iterations": opts.iterations, "seed": seed, "init_from": str(init_from) if init_from else None,
               "hard_negatives": len(hard)}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if r["model"] == "detector":
        train_detector(photos, config, opts, synth_p=sp, crop=r["crop"])
    else:
        train_landmarks(photos, config, opts, synth_p=sp, hard_negatives=hard)
    return out_dir
