"""Pixelate: replace the plate with coarse blocks about a third of the plate's height."""

from __future__ import annotations

import math

import cv2
import numpy as np

from plateveil.conceal.base import Concealer, quad_size


class PixelateConcealer(Concealer):
    name = "pixelate"

    def __init__(self, blocks_per_height: float = 3.0, min_block: int = 4) -> None:
        if blocks_per_height <= 0:
            raise ValueError("blocks_per_height must be > 0")
        self.blocks_per_height = float(blocks_per_height)
        self.min_block = int(min_block)

    def block_size(self, polygon: np.ndarray) -> int:
        w, h = quad_size(polygon)
        return max(self.min_block, int(round(max(min(w, h), 1.0) / self.blocks_per_height)))

    def render(self, roi: np.ndarray, polygon: np.ndarray) -> np.ndarray:
        block = self.block_size(polygon)
        h, w = roi.shape[:2]
        small = cv2.resize(roi, (max(1, math.ceil(w / block)), max(1, math.ceil(h / block))),
                           interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
