"""The null style: changes nothing (for evaluation and debugging)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from plateveil.conceal.base import Concealer


class NoConcealer(Concealer):
    name = "none"

    def apply(self, image_bgr: np.ndarray, polygons: Sequence[np.ndarray]) -> np.ndarray:
        return image_bgr.copy()

    def render(self, roi: np.ndarray, polygon: np.ndarray) -> np.ndarray:
        return roi.copy()
