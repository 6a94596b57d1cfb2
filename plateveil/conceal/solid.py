"""Solid: fill the plate with one colour."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from plateveil.conceal.base import Concealer


def parse_color(color: str | Sequence[int]) -> tuple[int, int, int]:
    """``"#rrggbb"`` or an (r, g, b) sequence -> a BGR tuple."""
    if isinstance(color, str):
        text = color.lstrip("#")
        if len(text) != 6:
            raise ValueError(f"colour {color!r} is not #rrggbb")
        r, g, b = (int(text[i:i + 2], 16) for i in (0, 2, 4))
    else:
        r, g, b = (int(c) for c in color)
    if not all(0 <= c <= 255 for c in (r, g, b)):
        raise ValueError(f"colour {color!r} out of range")
    return b, g, r


class SolidConcealer(Concealer):
    name = "solid"

    def __init__(self, color: str | Sequence[int] = "#202020") -> None:
        self.color_bgr = parse_color(color)

    def render(self, roi: np.ndarray, polygon: np.ndarray) -> np.ndarray:
        out = np.empty_like(roi)
        out[:] = self.color_bgr
        return out
