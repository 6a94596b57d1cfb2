"""The branded plate drawn by code (nothing downloaded, no binary asset): a clean white plate
with a thin dark border and the word "plateveil". Drawn once, on first use."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

BRAND_TEXT = "plateveil"
BRAND_SIZE = (520, 112)  # (width, height): the EU plate's 520 x 110 mm, rounded
_INK_BGR = (60, 35, 20)  # dark navy
_PAPER_BGR = (250, 250, 250)


@lru_cache(maxsize=4)
def brand_plate(width: int = BRAND_SIZE[0], height: int = BRAND_SIZE[1], text: str = BRAND_TEXT) -> np.ndarray:
    """A (height, width, 3) uint8 BGR branded plate. Read-only: copy before drawing on it."""
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[:] = _PAPER_BGR
    border = max(2, round(height * 0.05))
    inset = border
    cv2.rectangle(img, (inset, inset), (width - 1 - inset, height - 1 - inset), _INK_BGR,
                  thickness=border, lineType=cv2.LINE_AA)
    font = cv2.FONT_HERSHEY_DUPLEX
    thickness = max(1, round(height * 0.06))
    (tw, th), base = cv2.getTextSize(text, font, 1.0, thickness)
    scale = min((width * 0.82) / tw, (height * 0.55) / (th + base))
    thickness = max(1, round(height * 0.035))
    (tw, th), base = cv2.getTextSize(text, font, scale, thickness)
    org = ((width - tw) // 2, (height + th) // 2 - base // 3)
    cv2.putText(img, text, org, font, scale, _INK_BGR, thickness, lineType=cv2.LINE_AA)
    img.setflags(write=False)
    return img
