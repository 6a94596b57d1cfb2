"""Plain geometry over plain values, in full-image pixel coordinates.

Boxes are ``(x1, y1, x2, y2)``; quads are 4 points ``[[x, y], ...]`` ordered top-left, top-right,
bottom-right, bottom-left. The landmark model sees an *expanded crop* of a detector box: an
axis-aligned window around the box, resampled to a fixed size. ``crop_transform`` returns the 2x3
affine that maps image -> crop pixels; ``to_image`` maps crop-normalised points back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class CropWindow:
    """An axis-aligned window in the image (may extend past its borders)."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1


def expand_box(box: Box, expand_x: float, expand_y: float, min_aspect: float = 1.0,
               max_aspect: float = 4.0) -> CropWindow:
    """Grow ``box`` by ``expand_x`` of its width on each side and ``expand_y`` of its height.

    The window's width/height ratio is then clamped to ``[min_aspect, max_aspect]`` by growing
    the short side, so a very flat or very tall box still gets context around it.
    """
    x1, y1, x2, y2 = box
    w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    cw, ch = w * (1 + 2 * expand_x), h * (1 + 2 * expand_y)
    if cw / ch > max_aspect:
        ch = cw / max_aspect
    if cw / ch < min_aspect:
        cw = ch * min_aspect
    return CropWindow(cx - cw / 2, cy - ch / 2, cx + cw / 2, cy + ch / 2)


def crop_transform(window: CropWindow, out_w: int, out_h: int) -> np.ndarray:
    """2x3 affine mapping image pixels to crop pixels (for ``cv2.warpAffine``)."""
    sx, sy = out_w / window.width, out_h / window.height
    return np.array([[sx, 0.0, -window.x1 * sx], [0.0, sy, -window.y1 * sy]], dtype=np.float64)


def to_image(points_norm: np.ndarray, window: CropWindow) -> np.ndarray:
    """Map points given in crop-normalised coordinates ([0, 1] across the window) to the image."""
    pts = np.asarray(points_norm, dtype=np.float64).reshape(-1, 2)
    return np.stack([window.x1 + pts[:, 0] * window.width, window.y1 + pts[:, 1] * window.height], axis=1)


def to_crop_norm(points: np.ndarray, window: CropWindow) -> np.ndarray:
    """Inverse of :func:`to_image`."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return np.stack([(pts[:, 0] - window.x1) / window.width, (pts[:, 1] - window.y1) / window.height], axis=1)


def box_to_quad(box: Box) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], dtype=np.float64)


def quad_to_box(quad: np.ndarray) -> Box:
    q = np.asarray(quad, dtype=np.float64).reshape(-1, 2)
    return (float(q[:, 0].min()), float(q[:, 1].min()), float(q[:, 0].max()), float(q[:, 1].max()))


def pad_quad(quad: np.ndarray, margin_x: float, margin_y: float) -> np.ndarray:
    """Push each corner outward along the quad's own axes.

    ``margin_x`` is a fraction of the plate's width (along its top/bottom edges), ``margin_y`` of
    its height, so a tilted plate keeps its tilt and gains the same relative margin.
    """
    tl, tr, br, bl = np.asarray(quad, dtype=np.float64).reshape(4, 2)
    u = ((tr - tl) + (br - bl)) / 2
    v = ((bl - tl) + (br - tr)) / 2
    return np.array([
        tl - margin_x * u - margin_y * v,
        tr + margin_x * u - margin_y * v,
        br + margin_x * u + margin_y * v,
        bl - margin_x * u + margin_y * v,
    ])


def polygon_area(poly: np.ndarray) -> float:
    """Shoelace area (absolute)."""
    p = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def is_convex_quad(quad: np.ndarray) -> bool:
    """True when the 4 points form a convex, non-self-intersecting quad in either orientation."""
    q = np.asarray(quad, dtype=np.float64).reshape(4, 2)
    signs = []
    for i in range(4):
        a, b, c = q[i], q[(i + 1) % 4], q[(i + 2) % 4]
        cross = (b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0])
        signs.append(np.sign(cross))
    return all(s > 0 for s in signs) or all(s < 0 for s in signs)


def order_quad(points: np.ndarray) -> np.ndarray:
    """Order 4 points as TL, TR, BR, BL (by angle around the centroid, starting top-left)."""
    p = np.asarray(points, dtype=np.float64).reshape(4, 2)
    c = p.mean(axis=0)
    ang = np.arctan2(p[:, 1] - c[1], p[:, 0] - c[0])
    p = p[np.argsort(ang)]  # clockwise in image coordinates (y down), starting near -pi (left)
    start = int(np.argmin(p[:, 0] + p[:, 1]))
    return np.roll(p, -start, axis=0)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix between boxes ``a`` (N,4) and ``b`` (M,4)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    inter = box_intersection(a, b)
    return inter / np.maximum(box_area(a)[:, None] + box_area(b)[None, :] - inter, 1e-9)


def box_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection areas between boxes ``a`` (N,4) and ``b`` (M,4), (N, M)."""
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    return np.prod(np.clip(br - tl, 0, None), axis=2)


def box_area(boxes: np.ndarray) -> np.ndarray:
    return np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)


def drop_enclosing(quads: list[np.ndarray], scores: list[float], cover: float, area_ratio: float) -> list[int]:
    """Indices of the quads to keep, best score first: a quad whose bounding box holds at least ``cover`` of
    the box of a better-scored kept quad, and is at least ``area_ratio`` times its area, is dropped. The
    detector sometimes also fires on a plate together with the bumper around it (or a tail light beside it);
    the landmark model then calls the big crop a plate too, and concealing it hides a quarter of the car for
    no plate the smaller region does not already hide."""
    boxes = np.array([quad_to_box(q) for q in quads], dtype=np.float64).reshape(-1, 4)
    area = np.maximum(box_area(boxes), 1e-9)
    # encloses[i, k]: i's box holds ``cover`` of k's and is ``area_ratio`` times its area
    encloses = (box_intersection(boxes, boxes) >= cover * area[None, :]) & (area[:, None] >= area_ratio * area[None, :])
    keep: list[int] = []
    for i in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"):
        if not encloses[i, keep].any():
            keep.append(int(i))
    return keep
