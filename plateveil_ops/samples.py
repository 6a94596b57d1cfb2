"""Sample photos for the demo and the tests: simple car-like scenes with a licence plate drawn on
them (sky, road, a car body with windows and wheels, a white plate with random characters).

They are not meant to fool anyone - just to give the whole system realistic-looking input without
shipping photos. ``render_scene(seed)`` is deterministic.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class Scene:
    image_bgr: np.ndarray
    plate_quad: tuple[tuple[float, float], ...]  # TL, TR, BR, BL in pixels
    plate_text: str

    def jpeg(self, quality: int = 90) -> bytes:
        ok, buf = cv2.imencode(".jpg", self.image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        return buf.tobytes()

    def png(self) -> bytes:
        ok, buf = cv2.imencode(".png", self.image_bgr)
        assert ok
        return buf.tobytes()


def _plate_text(rng: np.random.Generator) -> str:
    letters = string.ascii_uppercase
    return (f"{''.join(rng.choice(list(letters), 2))}-{rng.integers(100, 999)}-"
            f"{''.join(rng.choice(list(letters), 2))}")


def render_scene(seed: int, size: tuple[int, int] = (800, 600)) -> Scene:
    """A (width, height) = ``size`` scene; the car's position, colour and scale depend on ``seed``."""
    rng = np.random.default_rng(seed)
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    horizon = int(h * rng.uniform(0.35, 0.5))
    sky_top, sky_bottom = np.array([200, 150, 90]), np.array([240, 215, 180])
    for y in range(horizon):
        img[y] = sky_top + (sky_bottom - sky_top) * (y / max(horizon - 1, 1))
    img[horizon:] = rng.integers(70, 110)
    noise = rng.normal(0, 6, (h - horizon, w, 1))
    img[horizon:] = np.clip(img[horizon:].astype(np.float32) + noise, 0, 255).astype(np.uint8)

    car_w = int(w * rng.uniform(0.45, 0.7))
    car_h = int(car_w * rng.uniform(0.38, 0.48))
    cx = int(w / 2 + rng.uniform(-0.12, 0.12) * w)
    bottom = int(h * rng.uniform(0.82, 0.92))
    x1, x2 = cx - car_w // 2, cx + car_w // 2
    body_top = bottom - int(car_h * 0.55)
    colour = tuple(int(c) for c in rng.integers(30, 220, 3))
    dark = tuple(int(c * 0.6) for c in colour)
    cv2.ellipse(img, (cx, bottom + 4), (car_w // 2 + 10, 14), 0, 0, 360, (40, 40, 40), -1)  # shadow
    cabin = np.array([[x1 + car_w * 0.18, body_top], [x1 + car_w * 0.3, bottom - car_h],
                      [x2 - car_w * 0.3, bottom - car_h], [x2 - car_w * 0.18, body_top]], np.int32)
    cv2.fillPoly(img, [cabin], dark)
    window = np.array([[x1 + car_w * 0.23, body_top - 4], [x1 + car_w * 0.32, bottom - car_h + 8],
                       [x2 - car_w * 0.32, bottom - car_h + 8], [x2 - car_w * 0.23, body_top - 4]], np.int32)
    cv2.fillPoly(img, [window], (90, 70, 60))
    cv2.rectangle(img, (x1, body_top), (x2, bottom - 10), colour, -1)
    for wx in (x1 + car_w // 5, x2 - car_w // 5):
        cv2.circle(img, (wx, bottom - 10), car_h // 5, (25, 25, 25), -1)
        cv2.circle(img, (wx, bottom - 10), car_h // 10, (150, 150, 150), -1)
    for lx in (x1 + 12, x2 - 12 - car_w // 8):
        cv2.rectangle(img, (lx, body_top + 12), (lx + car_w // 8, body_top + 12 + car_h // 10), (60, 200, 240), -1)

    plate_w = int(car_w * rng.uniform(0.22, 0.28))
    plate_h = max(int(plate_w * 0.23), 10)
    px1, py1 = cx - plate_w // 2, bottom - 12 - int(car_h * 0.12) - plate_h
    text = _plate_text(rng)
    cv2.rectangle(img, (px1, py1), (px1 + plate_w, py1 + plate_h), (245, 245, 245), -1)
    cv2.rectangle(img, (px1, py1), (px1 + plate_w, py1 + plate_h), (20, 20, 20), 1)
    cv2.rectangle(img, (px1 + 1, py1 + 1), (px1 + plate_w // 10, py1 + plate_h - 1), (160, 60, 20), -1)
    inner_w = plate_w - plate_w // 10
    (tw1, th1), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 1.0, 2)
    scale = min(plate_h * 0.65 / th1, inner_w * 0.9 / tw1)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, int(scale * 2)))
    tx = px1 + plate_w // 10 + max((inner_w - tw) // 2, 1)
    cv2.putText(img, text, (tx, py1 + (plate_h + th) // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (15, 15, 15),
                max(1, int(scale * 2)), cv2.LINE_AA)
    quad = ((float(px1), float(py1)), (float(px1 + plate_w), float(py1)),
            (float(px1 + plate_w), float(py1 + plate_h)), (float(px1), float(py1 + plate_h)))
    return Scene(img, quad, text)


def write_samples(folder: str | Path, count: int, size: tuple[int, int] = (800, 600), seed: int = 0) -> list[Path]:
    """Write ``count`` JPEG scenes (every fourth one as PNG) into ``folder``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        scene = render_scene(seed + i, size)
        path = out / (f"car-{i:02d}.png" if i % 4 == 3 else f"car-{i:02d}.jpg")
        path.write_bytes(scene.png() if path.suffix == ".png" else scene.jpeg())
        paths.append(path)
    return paths


def flat_png(width: int, height: int, color_type: int = 6, bit_depth: int = 8, level: int = 9) -> bytes:
    """A PNG of one flat colour, written row by row (a few KB of memory whatever its size): the
    "small file, huge decode" photos the decode budget is about. ``color_type`` 0 gray, 2 RGB,
    4 gray+alpha, 6 RGBA; ``bit_depth`` 8 or 16."""
    import struct
    import zlib

    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    row = b"\x00" + b"\x80" * (width * channels * bit_depth // 8)  # filter 0, mid grey, half alpha

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    comp = zlib.compressobj(level)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
