"""Recall per plate layout on generated plates pasted onto the validation photos: a stand-in for the layouts
that no real labelled photo here shows (US, Brazilian Mercosur, UK rear, two-line, dark).

For every layout in ``synth.LAYOUTS``, ``--n`` scenes: one of the validation photos (its own plates kept clear)
with 1-2 generated plates of that layout, 4-25% of the photo's width, and 0-3 generated non-plates. The bundle
runs at its own thresholds (or ``--landmark-threshold``); a plate counts as found when the concealed regions
cover 80% of its box, as in ``plateveil models eval``. Same seed, same scenes, so two bundles compare directly.
The generated plates include heavily blurred, dark and steeply angled ones, so these numbers sit below those on
real photos; what they show is how the layouts compare and how two bundles compare. Numbers only.

    python scripts/models/layout_recall.py [--model-dir DIR] [--data ../shared/data] [--n 60]
                                    [--landmark-threshold T] [--seed 7]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model_store.runtime import load_model
from model_training.data import DEFAULT_DATA_ROOT, load_split
from model_training.evaluate import score_image
from model_training.synth import LAYOUTS, synth_scene
from plateveil.geometry import quad_to_box


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", default=None, help="bundle folder (default: the shipped one)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT)
    ap.add_argument("--n", type=int, default=60, help="scenes per layout")
    ap.add_argument("--landmark-threshold", type=float, default=None)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"no labelled photos at {args.data}: pass --data", file=sys.stderr)
        return 2
    model = load_model(args.model_dir, backend="onnx")
    if args.landmark_threshold is not None:
        model.config["landmarks"]["score_threshold"] = args.landmark_threshold
    backgrounds = [(s.image, s.boxes) for s in load_split(args.data)[1][::2]]
    print(f"{model.tag}, landmark threshold {model.config['landmarks']['score_threshold']}, "
          f"{args.n} scenes per layout")
    print(f"{'layout':12s} {'recall@0.8':>10s} {'found':>9s} {'under 10% of the width':>24s}")
    for layout in LAYOUTS:
        rng = np.random.default_rng(args.seed)
        found = total = small_found = small_total = 0
        for i in tqdm(range(args.n), desc=layout, leave=False, mininterval=2.0):
            background, boxes = backgrounds[i % len(backgrounds)]
            image, corners = synth_scene(rng, background, boxes, max_plates=2, width_range=(0.04, 0.25),
                                         layouts=[layout])
            if not len(corners):
                continue
            plates, _ = model.find_plates(image)
            truth = np.array([quad_to_box(q) for q in corners], np.float32)
            height, width = image.shape[:2]
            cover = score_image((height, width), truth, [np.asarray(p.polygon) for p in plates])[0]
            small = (truth[:, 2] - truth[:, 0]) / width < 0.1
            found += int((cover >= 0.8).sum())
            total += len(truth)
            small_found += int(((cover >= 0.8) & small).sum())
            small_total += int(small.sum())
        print(f"{layout:12s} {found / max(total, 1):10.3f} {found:>4d}/{total:<4d} "
              f"{small_found:>18d}/{small_total:<5d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
