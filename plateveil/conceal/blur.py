"""The default style: a strong Gaussian blur whose strength follows the plate's size.

The blur's sigma is ``strength`` x the plate's height (its short side), so the text is gone on a
40-pixel plate and on a 400-pixel one alike. Large blurs are computed on a downscaled ROI (a
Gaussian of sigma s at scale 1/k equals one of sigma s/k then upscaled), which keeps the cost
independent of plate size.
"""

from __future__ import annotations

import cv2
import numpy as np

from plateveil.conceal.base import Concealer, quad_size

# working resolution: the ROI is downscaled until the blur's sigma is about this many pixels
_WORK_SIGMA = 4.0


class BlurConcealer(Concealer):
    name = "blur"

    def __init__(self, strength: float = 0.5, min_sigma: float = 3.0) -> None:
        if strength <= 0:
            raise ValueError("blur strength must be > 0")
        self.strength = float(strength)
        self.min_sigma = float(min_sigma)

    def sigma(self, polygon: np.ndarray) -> float:
        w, h = quad_size(polygon)
        return max(self.min_sigma, self.strength * max(min(w, h), 1.0))

    def context_margin(self, polygon: np.ndarray) -> float:
        return 2.0 * self.sigma(polygon)

    def render(self, roi: np.ndarray, polygon: np.ndarray) -> np.ndarray:
        sigma = self.sigma(polygon)
        scale = min(1.0, _WORK_SIGMA / sigma)
        h, w = roi.shape[:2]
        if scale < 1.0:
            sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
            small = cv2.resize(roi, (sw, sh), interpolation=cv2.INTER_AREA)
            small = cv2.GaussianBlur(small, (0, 0), sigmaX=sigma * scale, borderType=cv2.BORDER_REPLICATE)
            return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        return cv2.GaussianBlur(roi, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REPLICATE)
