"""Small drawing helpers shared by the plate and negative renderers (BGR uint8 canvases)."""

from __future__ import annotations

import functools

import cv2
import numpy as np

from model_training.synth import fonts

Colour = tuple[int, int, int]

CV_8U = 0  # OpenCV depth codes (the stubs lack the constants)
CV_32F = 5


def canvas(h: int, w: int, colour: Colour) -> np.ndarray:
    img = np.empty((h, w, 3), np.uint8)
    img[:] = colour
    return img


def vertical_gradient(h: int, w: int, top: Colour, bottom: Colour) -> np.ndarray:
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    col = (1 - t) * np.array(top, np.float32) + t * np.array(bottom, np.float32)
    return np.ascontiguousarray(np.broadcast_to(col, (h, w, 3)), dtype=np.uint8)


def blend_mask(img: np.ndarray, mask: np.ndarray, colour: Colour, x: int, y: int,
               opacity: float = 1.0) -> None:
    """Paint ``colour`` through an 8-bit coverage ``mask`` at (x, y), clipped to ``img``."""
    h, w = mask.shape
    H, W = img.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x1 <= x0 or y1 <= y0:
        return
    m = mask[y0 - y:y1 - y, x0 - x:x1 - x].astype(np.float32) * (opacity / 255.0)
    roi = img[y0:y1, x0:x1].astype(np.float32)
    roi += (np.array(colour, np.float32) - roi) * m[..., None]
    img[y0:y1, x0:x1] = roi.astype(np.uint8)


def text_box(img: np.ndarray, text: str, box: tuple[float, float, float, float], colour: Colour,
             font: str = fonts.SANS_BOLD, keep_aspect: bool = False, opacity: float = 1.0) -> None:
    """Draw ``text`` stretched to fill ``box`` (x1, y1, x2, y2) - or fitted inside it, centred."""
    if not text.strip():
        return
    x1, y1, x2, y2 = box
    bw, bh = max(int(round(x2 - x1)), 1), max(int(round(y2 - y1)), 1)
    mask = fonts.text_mask(text, font, bh)
    if keep_aspect:
        scale = min(bw / mask.shape[1], bh / mask.shape[0])
        tw, th = max(int(mask.shape[1] * scale), 1), max(int(mask.shape[0] * scale), 1)
        x1 += (bw - tw) / 2
        y1 += (bh - th) / 2
        bw, bh = tw, th
    interp = cv2.INTER_AREA if bh < mask.shape[0] else cv2.INTER_LINEAR
    mask = cv2.resize(mask, (bw, bh), interpolation=interp)
    blend_mask(img, mask, colour, int(round(x1)), int(round(y1)), opacity)


def rounded_mask(h: int, w: int, radius: float) -> np.ndarray:
    """uint8 mask (255 inside) of a w x h rectangle with anti-aliased rounded corners."""
    return _rounded_mask_cached(h, w, int(round(radius * 4)) / 4).copy()


@functools.lru_cache(maxsize=256)
def _rounded_mask_cached(h: int, w: int, radius: float) -> np.ndarray:
    mask = np.full((h, w), 255, np.uint8)
    r = int(np.ceil(radius))
    if r < 1:
        return mask
    yy, xx = np.mgrid[0:r, 0:r].astype(np.float32) + 0.5
    d = np.hypot(radius - xx, radius - yy)
    corner = np.clip(radius - d + 0.5, 0.0, 1.0)
    corner[(xx > radius) | (yy > radius)] = 1.0
    c = (corner * 255).astype(np.uint8)
    mask[:r, :r] = c
    mask[:r, w - r:] = c[:, ::-1]
    mask[h - r:, :r] = c[::-1, :]
    mask[h - r:, w - r:] = c[::-1, ::-1]
    return mask


def rect(img: np.ndarray, box: tuple[float, float, float, float], colour: Colour, thickness: int = -1) -> None:
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), colour, thickness, cv2.LINE_AA)


def circle(img: np.ndarray, centre: tuple[float, float], radius: float, colour: Colour, thickness: int = -1) -> None:
    sh = 4
    c = (int(round(centre[0] * (1 << sh))), int(round(centre[1] * (1 << sh))))
    cv2.circle(img, c, max(int(round(radius * (1 << sh))), 1), colour, thickness, cv2.LINE_AA, sh)


@functools.lru_cache(maxsize=1)
def _texture_bank() -> np.ndarray:
    """Smooth noise textures in [0, 1] (fixed seed: deterministic across runs)."""
    rng = np.random.default_rng(1234)
    out = []
    for cells in (3, 5, 8, 13, 21, 34, 4, 9):
        small = rng.random((cells, cells * 2)).astype(np.float32)
        big = cv2.resize(small, (128, 64), interpolation=cv2.INTER_CUBIC)
        big -= big.min()
        big /= max(float(big.max()), 1e-6)
        out.append(big)
    return np.stack(out)


def smooth_noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random smooth (low-frequency) noise field in [0, 1], float32, shape (h, w)."""
    bank = _texture_bank()
    tex = bank[rng.integers(len(bank))]
    if rng.random() < 0.5:
        tex = tex[:, ::-1]
    if rng.random() < 0.5:
        tex = tex[::-1, :]
    return cv2.resize(np.ascontiguousarray(tex), (w, h), interpolation=cv2.INTER_LINEAR)


def wear(rng: np.random.Generator, img: np.ndarray, strength: float) -> np.ndarray:
    """Dirt, uneven fading and speckles; returns a new uint8 image."""
    h, w = img.shape[:2]
    # gentle uneven illumination from the print/reflective film itself
    shade = 1.0 + (smooth_noise(rng, h, w) - 0.5) * np.float32(rng.uniform(0.0, 0.15))
    if strength > 0:
        dirt = smooth_noise(rng, h, w)
        tint = (rng.uniform(0.55, 0.85, 3) * np.array([0.9, 1.0, 1.05])).astype(np.float32)
        amount = cv2.pow(dirt, float(rng.uniform(1.0, 3.0))) * np.float32(strength)
        factor = (1.0 - amount[..., None] * (1.0 - tint)) * shade[..., None]
    else:
        factor = np.repeat(shade[..., None], 3, axis=2)
    out = cv2.multiply(img, factor, dtype=CV_8U)
    if strength > 0:
        for _ in range(int(rng.integers(0, int(6 * strength) + 1))):
            r = max(int(rng.uniform(0.01, 0.06) * h), 1)
            cx, cy = int(rng.uniform(0, w)), int(rng.uniform(0, h))
            col = tuple(float(v) for v in rng.uniform(40, 110, 3))
            x0, y0, x1, y1 = max(cx - r - 1, 0), max(cy - r - 1, 0), min(cx + r + 2, w), min(cy + r + 2, h)
            if x1 <= x0 or y1 <= y0:
                continue
            roi = out[y0:y1, x0:x1]
            spot = roi.copy()
            cv2.circle(spot, (cx - x0, cy - y0), r, col, -1, cv2.LINE_AA)
            op = float(rng.uniform(0.2, 0.6))
            out[y0:y1, x0:x1] = cv2.addWeighted(spot, op, roi, 1 - op, 0)
    return out
