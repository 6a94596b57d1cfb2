"""Recall on the validation photos resized without keeping their aspect: how much a photo squeezed or stretched
by another system on its way here (a thumbnailer, a "fit to 640x640" export) costs the shipped models.

Each validation photo and its labels (the reviewed ones, as ``make eval``) are scaled in x by each ``--factors``
value (1.0 is the photo as it is), and the bundle runs at its own thresholds. Scoring is ``make eval``'s:
recall@0.8, spurious regions per photo, excess. The Open Images photos here are already stretched to 416x416,
so 1.0 is not "natural" for them; the factors are relative to the photos as they are. Numbers only.

    python scripts/models/aspect_recall.py [--model-dir DIR] [--data ../shared/data] [--factors 0.75 1 1.33]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from model_store.runtime import load_model
from model_training.data import DEFAULT_DATA_ROOT, load_split
from model_training.evaluate import ImageResult, score_image, summarise


def stretch(image: np.ndarray, boxes: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """``image`` and its x1y1x2y2 ``boxes`` scaled by ``factor`` in x only."""
    if factor == 1.0:
        return image, boxes
    width = max(2, round(image.shape[1] * factor))
    resized = cv2.resize(image, (width, image.shape[0]), interpolation=cv2.INTER_AREA if factor < 1 else
                         cv2.INTER_LINEAR)
    return resized, boxes * np.array([width / image.shape[1], 1, width / image.shape[1], 1], np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", default=None, help="bundle folder (default: the shipped one)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT)
    ap.add_argument("--factors", type=float, nargs="+", default=[0.75, 1.0, 1.33])
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"no labelled photos at {args.data}: pass --data", file=sys.stderr)
        return 2
    model = load_model(args.model_dir, backend="onnx")
    samples = load_split(args.data, reviewed=True)[1]
    print(f"{model.tag}, {len(samples)} validation photos")
    print(f"{'x factor':>8s} {'recall@0.8':>10s} {'found':>9s} {'spurious/img':>12s} {'excess':>7s}")
    for factor in args.factors:
        results = []
        for s in tqdm(samples, desc=f"x{factor:g}", leave=False, mininterval=2.0):
            image, boxes = stretch(s.image, s.boxes, factor)
            plates, timings = model.find_plates(image)
            polygons = [np.asarray(p.polygon, dtype=np.float64) for p in plates]
            results.append(ImageResult(s, polygons, *score_image((image.shape[0], image.shape[1]), boxes, polygons),
                                       timings.detect + timings.landmarks))
        m = summarise(results)
        found = round(m["recall_08"] * m["n_plates"])
        print(f"{factor:8.2f} {m['recall_08']:10.3f} {found:>4d}/{m['n_plates']:<4d} "
              f"{m['spurious_per_image']:12.3f} {m['excess']:7.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
