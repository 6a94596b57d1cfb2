"""Overlay: warp a branded plate onto the plate quadrilateral.

The brand image is resized to about the plate's size, warped with a perspective transform onto
the quad (corners TL, TR, BR, BL), and its luminance is matched to the original plate region's
mean and standard deviation (contrast is only ever reduced, never boosted, and kept above a floor
so the brand stays legible). The base class blends it in with an anti-aliased polygon mask.
"""

from __future__ import annotations

import cv2
import numpy as np

from plateveil.conceal.base import Concealer, polygon_mask, quad_size
from plateveil.conceal.brand import brand_plate
from plateveil.geometry import is_convex_quad, order_quad


def _as_quad(polygon: np.ndarray) -> np.ndarray:
    p = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    if len(p) != 4:
        p = cv2.boxPoints(cv2.minAreaRect(p.astype(np.float32))).astype(np.float64)
        return order_quad(p)
    return p if is_convex_quad(p) else order_quad(p)


class OverlayConcealer(Concealer):
    name = "overlay"

    def __init__(self, min_contrast: float = 0.35, max_contrast: float = 1.0, text: str | None = None) -> None:
        self.min_contrast = float(min_contrast)
        self.max_contrast = float(max_contrast)
        self.text = text

    def _brand(self) -> np.ndarray:
        return brand_plate() if self.text is None else brand_plate(text=self.text)

    def render(self, roi: np.ndarray, polygon: np.ndarray) -> np.ndarray:
        quad = _as_quad(polygon)
        w, h = quad_size(quad)
        brand = self._brand()
        bw, bh = max(8, round(w)), max(4, round(h))
        interp = cv2.INTER_AREA if bw < brand.shape[1] else cv2.INTER_LINEAR
        small = cv2.resize(brand, (bw, bh), interpolation=interp)
        # continuous coordinates (pixel (0,0) spans [0,1)) -> OpenCV pixel-centre coordinates
        src = np.array([[0, 0], [bw, 0], [bw, bh], [0, bh]], dtype=np.float32) - 0.5
        dst = quad.astype(np.float32) - 0.5
        m = cv2.getPerspectiveTransform(src, dst)
        warped = cv2.warpPerspective(small, m, (roi.shape[1], roi.shape[0]), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE)
        # match the luminance of what it replaces
        inside = polygon_mask(roi.shape[:2], quad) >= 128
        if not inside.any():
            return warped
        orig = cv2.cvtColor(roi, cv2.COLOR_BGR2GRAY)[inside].astype(np.float32)
        new = cv2.cvtColor(warped, cv2.COLOR_BGR2GRAY)[inside].astype(np.float32)
        std_b = max(float(new.std()), 1.0)
        gain = float(np.clip(float(orig.std()) / std_b, self.min_contrast, self.max_contrast))
        bias = float(orig.mean()) - gain * float(new.mean())
        return cv2.convertScaleAbs(warped, alpha=gain, beta=bias)
