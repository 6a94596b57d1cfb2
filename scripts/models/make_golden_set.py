"""Build the shipped golden set ``model_store/golden_set/`` (the quality gate's and the smoke check's photos).

    python scripts/models/make_golden_set.py [--data ../shared/data] [--out model_store/golden_set]

It holds photos we may redistribute, in the corners format (``images/<name>.jpg`` +
``corners/<name>.json`` = ``{"plates": [[[x, y] x4], ...]}``, TL TR BR BL; box labels become
axis-aligned quads, which the evaluation reads as the same boxes):

* ``gen-*``: car scenes drawn by :func:`plateveil_ops.samples.render_scene` (the project's own, exact plate quads);
* ``usc-*``: ``us-closeups`` photos (experiment-plates, Roboflow, MIT), exact corners;
* ``kgl-*``: ``kaggle-cars`` photos (CC0), boxes;
* ``rod-*``: ``ro-dashcam`` frames (Robert Lucian Chiriac, MIT), boxes, re-encoded at JPEG quality 80.

Real photos come from the validation split only (never trained on), with the reviewed labels
(plates the data's labels left out) added, picked deterministically (sorted by a hash of the name).
Without ``../shared/data`` it writes the generated photos only. The README and LICENSE beside the
photos are kept as they are (written by hand); ``sources.json`` lists each photo's origin.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np

from model_training.data import DEFAULT_DATA_ROOT, load_split
from plateveil_ops.samples import render_scene

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "model_store" / "golden_set"

# (data folder, file prefix, how many, licence, longest side kept, JPEG quality or None to copy the bytes)
REAL = (
    ("us-closeups", "usc", 5, "MIT (experiment-plates, Roboflow)", None, None),
    ("kaggle-cars", "kgl", 4, "CC0 (kaggle car plate detection)", None, None),
    ("ro-dashcam", "rod", 2, "MIT (Copyright (c) 2020 Robert Lucian Chiriac)", 1280, 75),
)
GENERATED = ((100, (640, 480)), (101, (480, 360)), (102, (640, 360)), (103, (480, 360)), (104, (360, 480)),
             (105, (640, 480)))


def _quads(boxes: np.ndarray, corners: np.ndarray) -> list[list[list[float]]]:
    out = []
    for box, quad in zip(boxes, corners, strict=True):
        if np.isfinite(quad).all():
            out.append(np.asarray(quad, float).round(1).tolist())
        else:
            x1, y1, x2, y2 = (round(float(v), 1) for v in box)
            out.append([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])
    return out


def _write(out: Path, name: str, jpeg: bytes, plates: list[list[list[float]]]) -> None:
    (out / "images" / f"{name}.jpg").write_bytes(jpeg)
    (out / "corners" / f"{name}.json").write_text(json.dumps({"plates": plates}) + "\n")


def build(data_root: Path, out: Path) -> dict[str, dict[str, str]]:
    for sub in ("images", "corners"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir(parents=True)
    sources: dict[str, dict[str, str]] = {}
    for seed, size in GENERATED:
        scene = render_scene(seed, size)
        name = f"gen-{seed}"
        _write(out, name, scene.jpeg(quality=75), [[list(p) for p in scene.plate_quad]])
        sources[name] = {"source": f"plateveil_ops.samples.render_scene(seed={seed}, size={size})",
                         "licence": "the project's own"}
    if not data_root.is_dir():
        print(f"{data_root} not found: generated photos only", file=sys.stderr)
        return sources
    _, val = load_split(data_root)
    for folder, prefix, count, licence, long_side, quality in REAL:
        picked = sorted((s for s in val if s.source == folder and len(s.boxes)),
                        key=lambda s: hashlib.sha256(s.path.name.encode()).hexdigest())[:count]
        for sample in picked:
            name = f"{prefix}-{sample.path.stem}"
            boxes, corners = sample.boxes, sample.corners
            if quality is None and sample.path.suffix.lower() in (".jpg", ".jpeg"):
                jpeg = sample.path.read_bytes()
            else:
                img = sample.image
                scale = min(1.0, (long_side or max(img.shape[:2])) / max(img.shape[:2]))
                if scale < 1.0:
                    img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                    boxes, corners = boxes * scale, corners * scale
                ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality or 90])
                assert ok
                jpeg = buf.tobytes()
            _write(out, name, jpeg, _quads(boxes, corners))
            sources[name] = {"source": f"{folder}/images/{sample.path.name} (validation split)", "licence": licence}
    (out / "sources.json").write_text(json.dumps(sources, indent=1, sort_keys=True) + "\n")
    return sources


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    sources = build(args.data, args.out)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{len(sources)} photos, {size / 1024:.0f} KB in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
