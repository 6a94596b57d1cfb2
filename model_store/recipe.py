"""The shipped training recipe: ``plateveil models train detector|landmarks`` and ``make train``.

Measured on the 2-core development machine (see MODEL_CARD.md for the numbers of the shipped run).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

RECIPE: dict[str, dict[str, Any]] = {
    "detector": {"iterations": 2400, "batch_size": 16, "lr": 2e-3, "checkpoint_every": 200, "synth_p": 0.3,
                 "crop": 320},
    "landmarks": {"iterations": 2000, "batch_size": 64, "lr": 2e-3, "checkpoint_every": 250, "synth_p": 0.6},
}


def train(part: str, data_root: Path, out_dir: Path, iterations: int | None = None, seed: int = 0,
          synth_p: float | None = None, threads: int = 0) -> Path:
    from model_store.augment import load_photos
    from model_store.data import load_split
    from model_store.train import TrainOptions, default_config, train_detector, train_landmarks

    if part not in RECIPE:
        raise ValueError(f"unknown model part {part!r}; valid: {', '.join(RECIPE)}")
    r = dict(RECIPE[part])
    train_samples, _ = load_split(data_root)
    photos = load_photos(train_samples)
    logger.info("training %s on %d photos (%d plates) from %s", part, len(photos),
                sum(len(p.boxes) for p in photos), data_root)
    config = default_config()
    opts = TrainOptions(out_dir=Path(out_dir), iterations=iterations or r["iterations"], batch_size=r["batch_size"],
                        lr=r["lr"], checkpoint_every=r["checkpoint_every"], seed=seed, threads=threads)
    sp = r["synth_p"] if synth_p is None else synth_p
    summary = {"part": part, "data_root": str(data_root), "train_photos": len(photos),
               "train_plates": int(sum(len(p.boxes) for p in photos)), "synth_p": sp, **r,
               "iterations": opts.iterations, "seed": seed}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "summary.json").write_text(json.dumps(summary, indent=2))
    if part == "detector":
        train_detector(photos, config, opts, synth_p=sp, crop=r["crop"])
    else:
        hard = _hard_negatives(Path(out_dir).parent / "hard_negatives.json")
        train_landmarks(photos, config, opts, synth_p=sp, hard_negatives=hard)
    return Path(out_dir)


def _hard_negatives(path: Path) -> list[tuple[int, np.ndarray]]:
    if not path.is_file():
        return []
    rows = json.loads(path.read_text())
    return [(int(i), np.asarray(b, np.float32)) for i, b in rows]
