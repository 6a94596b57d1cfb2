"""The concealer base: mask a polygon (anti-aliased), render a replacement, blend.

A concealer never modifies its input. ``apply`` copies the image once, then for each polygon works
only inside the polygon's bounding rectangle (plus the context margin its style needs), clipped to
the image: polygons partly outside the image are clipped, polygons entirely outside, degenerate or
non-finite ones are skipped. Subclasses implement :meth:`Concealer.render`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import cv2
import numpy as np

from plateveil.geometry import polygon_area

logger = logging.getLogger(__name__)

_SHIFT = 4  # fillPoly sub-pixel bits: coordinates are drawn at 1/16 pixel precision


def polygon_mask(shape: tuple[int, ...], polygon: np.ndarray) -> np.ndarray:
    """uint8 mask of ``shape[:2]`` (h, w), 255 inside ``polygon`` (local pixel coords), anti-aliased edges."""
    mask = np.zeros(shape[:2], dtype=np.uint8)
    # pixel centres are at integer coordinates in OpenCV drawing; polygons are in continuous
    # coordinates where pixel (0, 0) spans [0, 1): shift by half a pixel
    pts = np.round((np.asarray(polygon, dtype=np.float64) - 0.5) * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(mask, [pts.reshape(-1, 1, 2)], 255, lineType=cv2.LINE_AA, shift=_SHIFT)
    return mask


def quad_size(polygon: np.ndarray) -> tuple[float, float]:
    """(width, height) of a TL, TR, BR, BL quad: mean lengths of its opposite edges.

    For other polygons, the sides of the minimum-area rectangle (long side first)."""
    p = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    if len(p) == 4:
        w = (np.linalg.norm(p[1] - p[0]) + np.linalg.norm(p[2] - p[3])) / 2
        h = (np.linalg.norm(p[3] - p[0]) + np.linalg.norm(p[2] - p[1])) / 2
        return float(w), float(h)
    (_, _), (a, b), _ = cv2.minAreaRect(p.astype(np.float32))
    return float(max(a, b)), float(min(a, b))


class Concealer:
    """Base of every concealment style. ``name`` is the registry name."""

    name = "base"

    def apply(self, image_bgr: np.ndarray, polygons: Sequence[np.ndarray]) -> np.ndarray:
        """Return a copy of ``image_bgr`` (HxWx3 uint8) with each polygon ((N,2) image pixels) concealed."""
        out = image_bgr.copy()
        h, w = out.shape[:2]
        for polygon in polygons:
            poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
            if len(poly) < 3 or not np.isfinite(poly).all() or polygon_area(poly) < 1.0:
                logger.debug("skipping degenerate polygon %s", poly.tolist())
                continue
            margin = max(0, int(math.ceil(self.context_margin(poly))))
            x1 = max(int(math.floor(poly[:, 0].min())) - 1 - margin, 0)
            y1 = max(int(math.floor(poly[:, 1].min())) - 1 - margin, 0)
            x2 = min(int(math.ceil(poly[:, 0].max())) + 1 + margin, w)
            y2 = min(int(math.ceil(poly[:, 1].max())) + 1 + margin, h)
            if x2 <= x1 or y2 <= y1:
                continue  # entirely outside the image
            local = poly - (x1, y1)
            roi = out[y1:y2, x1:x2]
            mask = polygon_mask(roi.shape[:2], local)
            bx1, by1, bw, bh = cv2.boundingRect(mask)
            if bw == 0 or bh == 0:
                continue
            replacement = self.render(roi, local)
            # blend only the mask's bounding rectangle
            bx2, by2 = bx1 + bw, by1 + bh
            alpha = mask[by1:by2, bx1:bx2].astype(np.float32) * (1.0 / 255.0)
            roi[by1:by2, bx1:bx2] = cv2.blendLinear(
                np.ascontiguousarray(replacement[by1:by2, bx1:bx2]), np.ascontiguousarray(roi[by1:by2, bx1:bx2]),
                alpha, 1.0 - alpha)
        return out

    def context_margin(self, polygon: np.ndarray) -> float:
        """Pixels of surrounding image ``render`` needs around the polygon's bounding box."""
        return 0.0

    def render(self, roi: np.ndarray, polygon: np.ndarray) -> np.ndarray:
        """The concealed version of ``roi`` (same shape, uint8). Only pixels inside ``polygon``
        (ROI-local coordinates) are used; the base blends them in with an anti-aliased mask."""
        raise NotImplementedError
