"""Contact sheets of labelled samples (synthetic and real) for eyeballing the training data."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from model_training.synth import negatives, plates
from model_training.synth.scene import synth_scene

logger = logging.getLogger(__name__)

# (image_bgr, boxes (N, 4) x1y1x2y2, corners (N, 4, 2) or NaN where unknown, title)
PreviewSample = tuple[np.ndarray, np.ndarray | None, np.ndarray | None, str]

BOX_COLOUR = (0, 200, 0)
QUAD_COLOUR = (0, 0, 255)
TITLE_H = 18


def _cell(sample: PreviewSample, cell: tuple[int, int]) -> np.ndarray:
    image, boxes, corners, title = sample
    cw, ch = cell
    out = np.full((ch, cw, 3), 40, np.uint8)
    ih, iw = image.shape[:2]
    avail_h = ch - TITLE_H
    scale = min(cw / iw, avail_h / ih)
    tw, th = max(int(round(iw * scale)), 1), max(int(round(ih * scale)), 1)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST if scale >= 3 else cv2.INTER_LINEAR
    ox, oy = (cw - tw) // 2, TITLE_H + (avail_h - th) // 2
    out[oy:oy + th, ox:ox + tw] = cv2.resize(image, (tw, th), interpolation=interp)
    sh = 4  # sub-pixel drawing; label coordinates are pixel edges, so edge * scale is exact

    def pt(x: float, y: float) -> tuple[int, int]:
        return int(round((ox + x * scale) * (1 << sh))), int(round((oy + y * scale) * (1 << sh)))

    if boxes is not None:
        for b in np.asarray(boxes, np.float64).reshape(-1, 4):
            cv2.rectangle(out, pt(b[0], b[1]), pt(b[2], b[3]), BOX_COLOUR, 1, cv2.LINE_AA, sh)
    if corners is not None:
        for q in np.asarray(corners, np.float64).reshape(-1, 4, 2):
            if not np.isfinite(q).all():
                continue
            pts = np.array([pt(x, y) for x, y in q], np.int32)
            cv2.polylines(out, [pts], True, QUAD_COLOUR, 1, cv2.LINE_AA, sh)
            cv2.circle(out, tuple(int(v) for v in pts[0]), 3 << sh, QUAD_COLOUR, -1, cv2.LINE_AA, sh)
    cv2.putText(out, title[:40], (4, TITLE_H - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (235, 235, 235), 1, cv2.LINE_AA)
    return out


def preview_sheet(samples: Sequence[PreviewSample], out_png: str | Path, cols: int = 4,
                  cell: tuple[int, int] = (320, 240)) -> Path:
    """Write a contact sheet PNG: boxes in green, corner quads in red with corner 0 (TL) dotted."""
    cols = max(int(cols), 1)
    cw, ch = cell
    rows = max((len(samples) + cols - 1) // cols, 1)
    sheet = np.full((rows * (ch + 4) + 4, cols * (cw + 4) + 4, 3), 20, np.uint8)
    for k, sample in enumerate(samples):
        r, c = divmod(k, cols)
        y, x = 4 + r * (ch + 4), 4 + c * (cw + 4)
        sheet[y:y + ch, x:x + cw] = _cell(sample, cell)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), sheet):
        raise OSError(f"could not write {out}")
    logger.info("wrote preview sheet %s (%d samples)", out, len(samples))
    return out


def generated_background(rng: np.random.Generator, width: int = 1280, height: int = 720) -> np.ndarray:
    """A plain background: a colour gradient, smooth blotches, a few dark car-ish blocks and noise."""
    top = rng.uniform(60, 220) + rng.normal(0, 12, 3)
    bottom = rng.uniform(20, 140) + rng.normal(0, 12, 3)
    t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    img = np.broadcast_to((1 - t) * top + t * bottom, (height, width, 3)).astype(np.float32)
    small = (rng.uniform(-35, 35, (9, 16, 1)) + rng.normal(0, 6, (9, 16, 3))).astype(np.float32)
    img = img + cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(1, 4))):
        x, y = rng.uniform(0, width * 0.8), rng.uniform(height * 0.3, height * 0.8)
        w, h = rng.uniform(0.15, 0.45) * width, rng.uniform(0.15, 0.35) * height
        col = rng.uniform(10, 110) + rng.normal(0, 15, 3)
        cv2.rectangle(img, (int(x), int(y)), (int(x + w), int(y + h)), tuple(float(c) for c in col), -1, cv2.LINE_AA)
    img = cv2.GaussianBlur(img, (0, 0), 2.0)
    img += rng.normal(0, 4, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _as_preview_sample(item: Any, index: int) -> PreviewSample:
    """Accept ``(image, boxes, corners, title)`` tuples or objects with image_bgr/boxes/corners/source."""
    if isinstance(item, tuple):
        image, boxes, corners, title = item
        return image, boxes, corners, str(title)
    title = f"real {getattr(item, 'source', '')} #{index}".strip()
    return item.image_bgr, getattr(item, "boxes", None), getattr(item, "corners", None), title


def _strip(images: Sequence[tuple[np.ndarray, np.ndarray | None]], width: int, height: int) -> np.ndarray:
    """Lay out small images left to right, wrapping, inside a width x height canvas (with corners)."""
    canvas = np.full((height, width, 3), 90, np.uint8)
    x = y = 6
    row_h = 0
    for img, corners in images:
        h, w = img.shape[:2]
        if x + w > width - 6:
            x, y = 6, y + row_h + 6
            row_h = 0
        if y + h > height - 6:
            break
        canvas[y:y + h, x:x + w] = img
        if corners is not None:
            pts = np.round((corners + np.array([x, y])) * 16).astype(np.int32)
            cv2.polylines(canvas, [pts], True, QUAD_COLOUR, 1, cv2.LINE_AA, 4)
        x += w + 6
        row_h = max(row_h, h)
    return canvas


def make_preview(out_png: str | Path, real_samples: Iterable[Any] | None = None, n_synth: int = 12,
                 seed: int = 0, cols: int = 4, cell: tuple[int, int] = (320, 240)) -> Path:
    """Sheet of ``n_synth`` synthetic scenes, a strip of every layout and negatives, and real samples.

    Synthetic scenes use the real samples' images as backgrounds when given (their labelled boxes
    are kept clear and drawn), else generated backgrounds.
    """
    rng = np.random.default_rng(seed)
    real = [_as_preview_sample(s, i) for i, s in enumerate(real_samples or [])]
    cells: list[PreviewSample] = []
    for k in range(n_synth):
        if real:
            bg, boxes, _, _ = real[k % len(real)]
            bg_boxes = None if boxes is None else np.asarray(boxes, np.float32).reshape(-1, 4)
        else:
            bg, bg_boxes = generated_background(rng), None
        img, corners = synth_scene(rng, bg, existing_boxes=bg_boxes)
        cells.append((img, bg_boxes, corners, f"synth #{k} ({len(corners)} plates)"))
    # every layout twice, flat, with their corner labels
    plate_imgs = []
    for layout in plates.ALL_LAYOUTS:
        for _ in range(2):
            img, corners = plates.render_plate(rng, layout, 40)
            plate_imgs.append((img, corners - 0.0))
    sw, sh = cell[0] * 2, cell[1] * 2
    cells.append((_strip(plate_imgs, sw, sh), None, None, "plates: every layout"))
    neg_imgs = [(negatives.render_negative(rng, 40, kind), None) for kind in negatives.NEGATIVE_KINDS]
    neg_imgs += [(negatives.render_negative(rng, 40), None) for _ in range(9)]
    cells.append((_strip(neg_imgs, sw, sh), None, None, "negatives (never labelled)"))
    cells.extend(real)
    return preview_sheet(cells, out_png, cols=cols, cell=cell)
