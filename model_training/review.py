"""Finding the plates a data set's labels leave out: ``plateveil models review``.

Unlabelled plates hurt twice: training learns that a readable plate is background (and mining hands it to
the landmark model as a "false positive"), and the evaluation counts its concealment as a spurious region.
A person has to decide what is a plate, so this module only makes the decision quick:

1. ``find_candidates``: what a bundle conceals-to-be (detector + landmark score above loose thresholds) away
   from every labelled plate, already-reviewed plates included, so nothing is shown twice;
2. ``write_sheets``: numbered contact sheets of those regions (with context) and ``candidates.json``;
3. ``accept``: the numbers a person calls plates go into the latest round's file (``data.REVIEWED_PLATES``), which
   ``data.with_reviewed`` adds to the labels everywhere.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from model_training.data import REVIEWED_PLATES, Sample, _image_size
from model_training.mine import near_share
from plateveil.geometry import box_iou

TILE = (200, 130)
PER_SHEET = 48
COLUMNS = 8


@dataclass
class Candidate:
    key: str                   # "<source>/<file name>", the reviewed-plates key
    path: str
    box: list[float]           # x1 y1 x2 y2: the bounding box of the landmark model's corners
    quad: list[list[float]]
    det_score: float
    lm_score: float


def _key(s: Sample) -> str:
    return f"{s.source}/{s.path.name}"


def find_candidates(model: Any, samples: list[Sample], min_det: float = 0.2, min_lm: float = 0.5
                    ) -> list[Candidate]:
    """Regions the bundle scores as plates (detector >= ``min_det``, landmark >= ``min_lm``) with under 10% of
    their area near a labelled plate (the evaluation's rule), ordered by photo."""
    from model_training.tune import collect

    out = []
    for s, cands in collect(model, samples, min_det=min_det):
        h, w = _image_size(s.path) if cands else (0, 0)
        for c in cands:
            if c.lm_score < min_lm:
                continue
            q = np.asarray(c.quad, dtype=np.float64)
            box = np.array([max(q[:, 0].min(), 0), max(q[:, 1].min(), 0), min(q[:, 0].max(), w), min(q[:, 1].max(), h)])
            if len(s.boxes) and near_share(box, s.boxes) >= 0.1:
                continue
            out.append(Candidate(_key(s), str(s.path), [round(float(v), 1) for v in box],
                                 np.round(q, 1).tolist(), round(float(c.det_score), 4), round(float(c.lm_score), 4)))
    return out


def _tile(img: np.ndarray, c: Candidate, number: int) -> np.ndarray:
    """The region at a scale that shows its surroundings (about 2x its width), quad in red, number on top."""
    tw, th = TILE
    x0, y0, x1, y1 = c.box
    bw, bh = max(x1 - x0, 8.0), max(y1 - y0, 4.0)
    s = max(bw * 2.2 / tw, bh * 3.5 / th)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    m = np.array([[1 / s, 0, tw / 2 - cx / s], [0, 1 / s, th / 2 - cy / s]], dtype=np.float32)
    t = cv2.warpAffine(img, m, (tw, th), flags=cv2.INTER_CUBIC)
    q = (np.asarray(c.quad) - [cx, cy]) / s + [tw / 2, th / 2]
    cv2.polylines(t, [np.int32(np.round(q))], True, (0, 0, 255), 1)
    cv2.rectangle(t, (0, 0), (tw, 16), (0, 0, 0), -1)
    cv2.putText(t, f"{number} {int(bw)}px d{c.det_score:.2f} l{c.lm_score:.2f}", (2, 12),
                cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 255), 1)
    return t


def write_sheets(candidates: list[Candidate], out_dir: Path) -> list[Path]:
    """``out_dir/sheet-NN.png`` (48 numbered tiles each) and ``out_dir/candidates.json`` (the numbers' regions)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "candidates.json").write_text(json.dumps([asdict(c) for c in candidates], indent=1))
    tiles, img, img_path = [], None, None
    for i, c in enumerate(candidates):
        if c.path != img_path:
            img, img_path = cv2.imread(c.path, cv2.IMREAD_COLOR), c.path
        if img is None:
            raise ValueError(f"cannot read image {c.path}")
        tiles.append(_tile(img, c, i))
    sheets = []
    blank = np.zeros((TILE[1], TILE[0], 3), np.uint8)
    for k in range(0, len(tiles), PER_SHEET):
        page = tiles[k:k + PER_SHEET]
        page += [blank] * (-len(page) % COLUMNS)
        sheet = np.vstack([np.hstack(page[j:j + COLUMNS]) for j in range(0, len(page), COLUMNS)])
        path = out_dir / f"sheet-{k // PER_SHEET:02d}.png"
        cv2.imwrite(str(path), sheet)
        sheets.append(path)
    return sheets


def accept(candidates_json: Path, numbers: list[int], labels: Path = REVIEWED_PLATES) -> tuple[int, int]:
    """Add the candidates ``numbers`` to the reviewed-plates file (one box per plate: a region overlapping a
    box already there by IoU > 0.3 is the same plate). Returns (added, already there)."""
    cands = json.loads(Path(candidates_json).read_text())
    bad = [n for n in numbers if not 0 <= n < len(cands)]
    if bad:
        raise ValueError(f"no candidate numbered {bad} in {candidates_json} (0..{len(cands) - 1})")
    doc: dict[str, Any] = (json.loads(labels.read_text()) if labels.is_file()
                           else {"about": "plates the data's labels leave out", "plates": {}})
    added = known = 0
    for n in sorted(set(numbers)):
        c = cands[n]
        boxes = doc["plates"].setdefault(c["key"], [])
        if boxes and box_iou(c["box"], boxes).max() > 0.3:
            known += 1
            continue
        boxes.append(c["box"])
        added += 1
    doc["plates"] = dict(sorted(doc["plates"].items()))
    labels.parent.mkdir(parents=True, exist_ok=True)
    labels.write_text(json.dumps(doc, indent=1) + "\n")
    return added, known
