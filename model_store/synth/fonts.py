"""Fonts for synthetic plates: matplotlib's bundled DejaVu TTFs, drawn with Pillow.

matplotlib ships these files with every install, so no system font is assumed. Text is drawn
once per call into a tight 8-bit coverage mask, which callers stretch into the box they want
(plate fonts are condensed; stretching a bold sans is close enough at training resolutions).
"""

from __future__ import annotations

import functools
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

SANS_BOLD = "DejaVuSans-Bold.ttf"
MONO_BOLD = "DejaVuSansMono-Bold.ttf"
SANS = "DejaVuSans.ttf"
SERIF_BOLD = "DejaVuSerif-Bold.ttf"
SANS_OBLIQUE = "DejaVuSans-BoldOblique.ttf"

PLATE_FONTS = (SANS_BOLD, MONO_BOLD)
ALL_FONTS = (SANS_BOLD, MONO_BOLD, SANS, SERIF_BOLD, SANS_OBLIQUE)

# Fonts are loaded at a few fixed sizes and the rendered mask is resized; this keeps the cache
# small and text rendering cost independent of the plate size asked for.
_SIZES = (16, 32, 64)


class FontMissingError(RuntimeError):
    """matplotlib's bundled font files are not where they should be."""


@functools.cache
def font_path(name: str) -> Path:
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name
    if not path.is_file():
        raise FontMissingError(f"bundled font {name!r} not found at {path}")
    return path


@functools.cache
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path(name)), size)


@functools.lru_cache(maxsize=4096)
def _text_mask_cached(text: str, name: str, size: int) -> np.ndarray:
    font = _font(name, size)
    left, top, right, bottom = font.getbbox(text)
    w, h = max(int(right - left), 1), max(int(bottom - top), 1)
    img = Image.new("L", (w, h), 0)
    ImageDraw.Draw(img).text((-left, -top), text, font=font, fill=255)
    mask = np.asarray(img)
    mask.setflags(write=False)
    return mask


def text_mask(text: str, name: str = SANS_BOLD, height_hint: int = 32) -> np.ndarray:
    """Tight uint8 coverage mask of ``text`` (ink = 255), read-only; resize it to fit a box."""
    size = next((s for s in _SIZES if s >= height_hint), _SIZES[-1])
    return _text_mask_cached(text, name, size)
