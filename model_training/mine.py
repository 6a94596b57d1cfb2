"""Hard negatives for the landmark model: what the detector finds on training photos away from every plate.

The landmark score is the pipeline's false-positive filter, so it has to see the detector's own mistakes
(grilles, badges, signs, text on shop fronts), not only random crops. A detection counts as a mistake by
the evaluation's rule: under 10% of its area near a labelled plate.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from model_training.evaluate import (
    near_share,  # also re-exported: mine.near_share is what recipes and review call
)

logger = logging.getLogger(__name__)


def off_labels(box: np.ndarray, photo: Any) -> bool:
    """Whether ``box`` is a negative by the evaluation's rule: under 10% of its area near a labelled plate of
    ``photo`` (``Photo`` or ``Sample``), and under 10% inside its ignore regions (unsure plates, ``repairs``)."""
    if len(photo.boxes) and near_share(box, photo.boxes) >= 0.1:
        return False
    ignore = getattr(photo, "ignore", None)
    return not (ignore is not None and len(ignore) and near_share(box, ignore) >= 0.1)


def mine_hard_negatives(model: Any, photos: list[Any], min_score: float = 0.15, max_per_photo: int = 10,
                        progress: bool = True) -> list[dict[str, Any]]:
    """Run the detector on each photo and keep its boxes that are not near any labelled plate nor on an ignore
    region (``off_labels``).

    Returns rows ``{"photo": index into photos, "box": [x1, y1, x2, y2], "score": detector score}``
    in the photos' own coordinates (those of ``augment.load_photos``, which the sampler crops from).
    """
    rows: list[dict[str, Any]] = []
    for i, photo in enumerate(tqdm(photos, desc="mine", mininterval=2.0, disable=not progress)):
        dets = model.detect(photo.image, score_threshold=min_score)
        kept = 0
        for d in sorted(dets, key=lambda d: -d.score):
            box = np.asarray(d.box, dtype=np.float32)
            if box[2] - box[0] < 4 or box[3] - box[1] < 2:
                continue
            if not off_labels(box, photo):
                continue
            rows.append({"photo": i, "box": [round(float(v), 1) for v in box], "score": round(d.score, 4)})
            kept += 1
            if kept >= max_per_photo:
                break
    logger.info("mined %d hard negatives on %d photos (detector score >= %.2f)", len(rows), len(photos), min_score)
    return rows


def mine_bundle(model_dir: Path, data_root: Path, out: Path, min_score: float = 0.15,
                reviewed: bool = True, rounds: int | None = None, corrections: Path | None = None
                ) -> tuple[str, int, list]:
    """``plateveil models mine``: a bundle's detector over the training photos of ``data_root`` (``reviewed``:
    with the plates of the first ``rounds`` review rounds (None: all) added to their labels, so that those are
    not mined), saved to ``out``; returns (model tag, number of photos, rows)."""
    from model_store.runtime import load_model
    from model_training.augment import load_photos
    from model_training.data import load_split

    model = load_model(model_dir, backend="onnx")
    # a corrections export is one more folder (passed only when given: callers that stub load_split need not know it)
    samples = (load_split(data_root, reviewed=reviewed, rounds=rounds, corrections=corrections) if corrections is not None
               else load_split(data_root, reviewed=reviewed, rounds=rounds))[0]
    photos = load_photos(samples)
    rows = mine_hard_negatives(model, photos, min_score=min_score)
    save(rows, out)
    return model.tag, len(photos), rows


def save(rows: list[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows))
    return path


def load(path: Path) -> list[tuple[int, np.ndarray]]:
    """``(photo index, box)`` pairs for ``LandmarkSampler.hard_negatives``; [] when the file is absent."""
    if not path.is_file():
        return []
    rows = json.loads(path.read_text())
    out = []
    for r in rows:
        if isinstance(r, dict):
            out.append((int(r["photo"]), np.asarray(r["box"], np.float32)))
        else:  # legacy [index, box] pairs
            out.append((int(r[0]), np.asarray(r[1], np.float32)))
    return out


def sample_sheet(rows: list[dict[str, Any]], photos: list[Any], out_png: Path, n: int = 48, seed: int = 0,
                 cols: int = 8, cell: tuple[int, int] = (200, 120)) -> tuple[Path, list[dict[str, Any]]]:
    """A numbered contact sheet of ``n`` mined rows drawn at random (``seed``), each box in red on its context
    (twice its size around it), so that a person can name what the detector takes for a plate; returns the
    sheet and the rows drawn, in sheet order (number = index + 1), with their photo's source."""
    import cv2

    rng = np.random.default_rng(seed)
    picked = [rows[int(i)] for i in rng.choice(len(rows), size=min(n, len(rows)), replace=False)] if rows else []
    w, h = cell
    sheet = np.full(((len(picked) + cols - 1) // cols * h or h, cols * w, 3), 255, np.uint8)
    out_rows = []
    for k, r in enumerate(picked):
        photo = photos[r["photo"]]
        x1, y1, x2, y2 = r["box"]
        bw, bh = x2 - x1, y2 - y1
        cx1, cy1 = int(max(0, x1 - bw)), int(max(0, y1 - 1.5 * bh))
        cx2, cy2 = int(min(photo.image.shape[1], x2 + bw)), int(min(photo.image.shape[0], y2 + 1.5 * bh))
        crop = photo.image[cy1:cy2, cx1:cx2].copy()
        cv2.rectangle(crop, (int(x1 - cx1), int(y1 - cy1)), (int(x2 - cx1), int(y2 - cy1)), (0, 0, 255), 1)
        s = min((w - 4) / max(crop.shape[1], 1), (h - 18) / max(crop.shape[0], 1))
        crop = cv2.resize(crop, (max(int(crop.shape[1] * s), 1), max(int(crop.shape[0] * s), 1)))
        y0, x0 = (k // cols) * h, (k % cols) * w
        sheet[y0 + 16:y0 + 16 + crop.shape[0], x0 + 2:x0 + 2 + crop.shape[1]] = crop
        cv2.putText(sheet, f"{k + 1} {r['score']:.2f} {str(getattr(photo, 'source', ''))[:14]}", (x0 + 2, y0 + 12),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
        out_rows.append({"n": k + 1, **r, "source": str(getattr(photo, "source", ""))})
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_png), sheet)
    return out_png, out_rows
