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


@functools.cache
def _glyph(ch: str, name: str, size: int) -> tuple[np.ndarray, float]:
    """One character's coverage on a full line-height strip (ascent + descent rows), its advance."""
    font = _font(name, size)
    ascent, descent = font.getmetrics()
    advance = float(font.getlength(ch))
    left, _, right, _ = font.getbbox(ch)
    w = max(int(np.ceil(max(right, advance))) + 1, 1)
    img = Image.new("L", (w, ascent + descent), 0)
    ImageDraw.Draw(img).text((0, 0), ch, font=font, fill=255)
    mask = np.asarray(img)
    mask.setflags(write=False)
    return mask, advance


def _compose(text: str, name: str, size: int) -> np.ndarray:
    glyphs = [_glyph(ch, name, size) for ch in text]
    xs = np.concatenate([[0.0], np.cumsum([adv for _, adv in glyphs])])
    width = max(int(np.ceil(x)) + g.shape[1] for x, (g, _) in zip(xs[:-1], glyphs, strict=True))
    line = np.zeros((glyphs[0][0].shape[0], width), np.uint8)
    for x, (g, _) in zip(xs[:-1], glyphs, strict=True):
        xi = int(round(x))
        np.maximum(line[:, xi:xi + g.shape[1]], g, out=line[:, xi:xi + g.shape[1]])
    rows = np.flatnonzero(line.max(axis=1))
    cols = np.flatnonzero(line.max(axis=0))
    if rows.size == 0:
        return np.zeros((1, 1), np.uint8)
    out = line[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    out.setflags(write=False)
    return out


def text_mask(text: str, name: str = SANS_BOLD, height_hint: int = 32) -> np.ndarray:
    """Tight uint8 coverage mask of ``text`` (ink = 255), read-only; resize it to fit a box.

    Strings are assembled from cached glyphs (no kerning - plate lettering has none to speak of),
    so random plate texts cost a few array copies instead of a FreeType render each.
    """
    size = next((s for s in _SIZES if s >= height_hint), _SIZES[-1])
    return _compose(text, name, size)
