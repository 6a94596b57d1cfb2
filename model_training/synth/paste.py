"""Paste rendered plates (and plate-like negatives) into real photos with exact corner labels.

Coordinates are pixel-edge coordinates: pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``, so a
returned corner is where the plate's outer boundary really is, not a pixel centre. The warp is
built edge-to-edge and converted to OpenCV's pixel-centre convention; the plate's coverage of each
output pixel is computed analytically from the quad (anti-aliased edges, no halo), and blur is
applied to the premultiplied plate so a blurred plate does not drag a dark fringe with it.

Only small regions of interest are touched, which keeps a 1280x720 scene at a few milliseconds;
JPEG re-compression is done on the whole image for some scenes and on block-aligned regions
around the pasted items otherwise (see :func:`recompress`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from model_training.synth import draw, plates

# An item to paste: ``prepare(rng) -> (aspect w/h, draw)``; ``draw(height_px)`` returns the item's
# BGR image, its alpha and whether its outer edges are the rectangle's (plates) or come from alpha.
Draw = Callable[[int], tuple[np.ndarray, np.ndarray, bool]]
Renderer = Callable[[np.random.Generator], tuple[float, Draw]]

# share of scenes whose whole image is re-compressed (costs ~25-40 ms on 1280x720); the rest
# re-compress block-aligned windows around what was pasted
FULL_JPEG_P = 0.05
# share of plates sitting in a visible holder / recess
FRAME_P = 0.25


@dataclass(frozen=True)
class Pasted:
    """One pasted item: its quad in image pixel-edge coordinates and the region it touched."""

    quad: np.ndarray  # (4, 2) float32, TL TR BR BL
    roi: tuple[int, int, int, int]  # x1, y1, x2, y2 (exclusive)


def _translate(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


def random_pose_quad(rng: np.random.Generator, aspect: float) -> np.ndarray:
    """Corners (TL TR BR BL) of a ``aspect``-wide (w/h) rectangle seen in random perspective.

    Yaw up to ~45 degrees, pitch up to ~20, roll up to ~10, camera distance 1.2-10 plate widths
    (strong to negligible perspective). Returned in arbitrary units, origin at the centre.
    """
    yaw = math.radians(45.0 * rng.uniform(-1, 1) * rng.uniform(0.3, 1.0))
    pitch = math.radians(20.0 * rng.uniform(-1, 1) * rng.uniform(0.3, 1.0))
    roll = math.radians(min(max(float(rng.normal(0, 4.0)), -10.0), 10.0))
    dist = 1.2 + 9.0 * rng.random() ** 2
    hw, hh = 0.5, 0.5 / aspect
    pts = np.array([[-hw, -hh, 0], [hw, -hh, 0], [hw, hh, 0], [-hw, hh, 0]], np.float64)
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    cam = pts @ (rz @ rx @ ry).T + np.array([0.0, 0.0, dist])
    return cam[:, :2] / cam[:, 2:3] * dist


def _coverage(quad: np.ndarray, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """Fraction of each pixel of the ROI inside the convex ``quad`` (anti-aliased, float32)."""
    xs = np.arange(w, dtype=np.float32) + (x0 + 0.5)
    ys = np.arange(h, dtype=np.float32) + (y0 + 0.5)
    cov = None
    for k in range(4):
        p, q = quad[k], quad[(k + 1) % 4]
        ex, ey = float(q[0] - p[0]), float(q[1] - p[1])
        n = math.hypot(ex, ey) or 1.0
        # signed distance, positive inside for TL TR BR BL order with y pointing down
        d = (ex * (ys[:, None] - p[1]) - ey * (xs[None, :] - p[0])) / n
        cov = d if cov is None else np.minimum(cov, d)
    assert cov is not None
    cov += 0.5
    return np.minimum(np.maximum(cov, 0.0, out=cov), 1.0, out=cov)


@functools.lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    return np.random.default_rng(4321).standard_normal((512, 768, 3)).astype(np.float32)


def _noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    bank = _noise_bank()
    if h > bank.shape[0] or w > bank.shape[1]:
        return rng.standard_normal((h, w, 3)).astype(np.float32)
    y, x = int(rng.integers(0, bank.shape[0] - h + 1)), int(rng.integers(0, bank.shape[1] - w + 1))
    return bank[y:y + h, x:x + w]


def _blur(rng: np.random.Generator, size_px: float) -> tuple[Callable[[np.ndarray], np.ndarray] | None, int]:
    """A motion or defocus blur (or None) scaled loosely to the item's on-screen size, and its radius."""
    u = rng.random()
    if u < 0.45:
        return None, 0
    if u < 0.8:  # defocus / soft optics: separable Gaussian
        sigma = float(rng.uniform(0.3, 1.0) * max(1.0, size_px / 60.0) ** 0.5)
        r = max(int(math.ceil(sigma * 2.5)), 1)
        g = cv2.getGaussianKernel(2 * r + 1, sigma).astype(np.float32)

        def gauss(a: np.ndarray) -> np.ndarray:
            return cv2.sepFilter2D(a, -1, g, g, borderType=cv2.BORDER_CONSTANT)

        return gauss, r
    length = int(rng.integers(3, 4 + int(min(size_px / 20.0, 8))))
    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), float(rng.uniform(0, 180)), 1.0)
    k = cv2.warpAffine(k, rot, (length, length))
    k /= max(float(k.sum()), 1e-6)

    def motion(a: np.ndarray) -> np.ndarray:
        return cv2.filter2D(a, -1, k, borderType=cv2.BORDER_CONSTANT)

    return motion, length // 2 + 1


@dataclass(frozen=True)
class _Light:
    """Photometric change of one item: per-channel gain, optional per-pixel shade and additive term."""

    gain: np.ndarray  # (3,) float32
    shade: np.ndarray | None  # (h, w) float32 multiplier
    add: np.ndarray | None  # (h, w, 3) float32, before alpha


def _photometric(rng: np.random.Generator, fg: np.ndarray, bg: np.ndarray, quad_roi: np.ndarray) -> _Light:
    """Lighting gain and colour cast loosely matched to the background, shadows, glare, noise.

    ``fg`` and ``bg`` are uint8 ROIs of the same size.
    """
    bg_mean = np.array(cv2.mean(bg)[:3]) + 1.0
    fg_mean = np.array(cv2.mean(fg)[:3]) + 1.0
    bg_gray, fg_gray = float(bg_mean.mean()), float(fg_mean.mean())
    if rng.random() < 0.75:
        k = rng.uniform(0.1, 0.8)
        gain = min(max((bg_gray / fg_gray) ** k, 0.3), 1.4)
    else:
        gain = float(rng.uniform(0.35, 1.25))
    cast = np.minimum(np.maximum((bg_mean / bg_gray) ** rng.uniform(0.0, 0.6), 0.75), 1.3)
    h, w = fg.shape[:2]
    shade = add = None
    if rng.random() < 0.3:  # shadow edge crossing the plate
        c = quad_roi.mean(axis=0)
        ang = rng.uniform(0, 2 * math.pi)
        nx, ny = math.cos(ang), math.sin(ang)
        off = rng.uniform(-0.3, 0.3) * (quad_roi[:, 0].max() - quad_roi[:, 0].min())
        soft = rng.uniform(0.5, 4.0)
        xs = (np.arange(w, dtype=np.float32)[None, :] + np.float32(0.5 - c[0])) * np.float32(nx / soft)
        ys = (np.arange(h, dtype=np.float32)[:, None] + np.float32(0.5 - c[1])) * np.float32(ny / soft)
        side = xs + ys
        side += np.float32(0.5 - off / soft)
        np.minimum(np.maximum(side, 0, out=side), 1, out=side)
        dark = rng.uniform(0.3, 0.75)
        shade = 1 - np.float32(1 - dark) * side
    if rng.random() < 0.12:  # specular glare blob
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        sig = rng.uniform(0.1, 0.5) * max(w, h)
        xs = (np.arange(w, dtype=np.float32)[None, :] - np.float32(cx)) ** 2
        ys = (np.arange(h, dtype=np.float32)[:, None] - np.float32(cy)) ** 2
        blob = np.exp((xs + ys) * np.float32(-1 / (2 * sig * sig))) * np.float32(rng.uniform(40, 160))
        add = cv2.merge((blob, blob, blob))
    sigma = rng.uniform(0, 7) * rng.random()
    if sigma > 0.5:
        noise = _noise(rng, h, w) * np.float32(sigma)
        add = noise if add is None else add + noise
    return _Light((gain * cast).astype(np.float32), shade, add)


def _place(rng: np.random.Generator, shape: tuple[int, int], quad0: np.ndarray, taken: list[np.ndarray],
           dark_map: Callable[[], np.ndarray], tries: int = 25) -> np.ndarray | None:
    """Translate ``quad0`` (centred at the origin) to a free spot; None when nothing fits."""
    H, W = shape
    lo, hi = quad0.min(axis=0), quad0.max(axis=0)
    if hi[0] - lo[0] > W - 4 or hi[1] - lo[1] > H - 4:
        return None
    xr = (2 - lo[0], W - 2 - hi[0])
    yr = (2 - lo[1], H - 2 - hi[1])
    mode = rng.random()
    for _ in range(tries):
        if mode < 0.35:  # lower half, where cars' plates usually are
            cy = rng.uniform(max(yr[0], 0.5 * H), max(yr[1], 0.5 * H))
            cx = rng.uniform(*xr)
        elif mode < 0.6:  # darkest of a few candidates (bumpers, tyres, car bodies)
            cands = np.stack([rng.uniform(*xr, 6), rng.uniform(*yr, 6)], axis=1)
            dm = dark_map()
            gy = np.clip((cands[:, 1] / H * dm.shape[0]).astype(int), 0, dm.shape[0] - 1)
            gx = np.clip((cands[:, 0] / W * dm.shape[1]).astype(int), 0, dm.shape[1] - 1)
            cx, cy = cands[int(np.argmin(dm[gy, gx]))]
        else:
            cx, cy = rng.uniform(*xr), rng.uniform(*yr)
        cy = min(max(cy, yr[0]), yr[1])
        box = np.array([lo[0] + cx, lo[1] + cy, hi[0] + cx, hi[1] + cy])
        if all(not _overlap(box, t) for t in taken):
            return quad0 + np.array([cx, cy])
    return None


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])


def _pad_box(box: np.ndarray, frac: float, px: float) -> np.ndarray:
    w, h = box[2] - box[0], box[3] - box[1]
    return np.array([box[0] - w * frac - px, box[1] - h * frac - px, box[2] + w * frac + px, box[3] + h * frac + px])


def _sample_width_frac(rng: np.random.Generator, width_range: tuple[float, float]) -> float:
    lo, hi = width_range
    if hi <= lo:
        return lo
    return float(lo * (hi / lo) ** (rng.random() ** 1.4))  # log-uniform, biased to small


def composite(rng: np.random.Generator, img: np.ndarray, src: np.ndarray, src_alpha: np.ndarray,
              quad: np.ndarray, rect_edges: bool = True, realism: bool = True) -> tuple[int, int, int, int]:
    """Warp ``src`` (BGR + alpha) so its image border lands on ``quad``, in place; returns the ROI.

    With ``rect_edges`` the outer edges come from the exact quad (analytic coverage) and the
    alpha only adds rounded corners; otherwise the item's own alpha outlines it. ``realism=False``
    skips lighting, blur and noise (tests use it to check the geometry alone).
    """
    H, W = img.shape[:2]
    sh, sw = src.shape[:2]
    blur, radius = _blur(rng, float(quad[:, 0].max() - quad[:, 0].min())) if realism else (None, 0)
    pad = 2 + radius
    x0 = max(int(math.floor(quad[:, 0].min())) - pad, 0)
    y0 = max(int(math.floor(quad[:, 1].min())) - pad, 0)
    x1 = min(int(math.ceil(quad[:, 0].max())) + pad, W)
    y1 = min(int(math.ceil(quad[:, 1].max())) + pad, H)
    rw, rh = x1 - x0, y1 - y0
    b = 0 if rect_edges else 2  # transparent margin so the item's own alpha fades out at its border
    rgba = cv2.copyMakeBorder(cv2.merge((*cv2.split(src), src_alpha)), b, b, b, b, cv2.BORDER_CONSTANT, value=0)
    src_edges = np.array([[b, b], [sw + b, b], [sw + b, sh + b], [b, sh + b]], np.float32)
    h_edge = cv2.getPerspectiveTransform(src_edges, quad.astype(np.float32))
    m = _translate(-x0 - 0.5, -y0 - 0.5) @ h_edge @ _translate(0.5, 0.5)
    warped = cv2.warpPerspective(rgba, m, (rw, rh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    fg = np.ascontiguousarray(warped[..., :3])
    alpha = warped[..., 3].astype(np.float32) * np.float32(1 / 255)
    if rect_edges:
        alpha *= _coverage(quad, x0, y0, rw, rh)
    bg = img[y0:y1, x0:x1]
    if realism:
        light = _photometric(rng, fg, bg, quad - np.array([x0, y0], np.float32))
        a_lit = alpha if light.shade is None else alpha * light.shade
        a3s = cv2.merge([a_lit * g for g in light.gain])
        pre = cv2.multiply(fg, a3s, dtype=draw.CV_32F)
        if light.add is not None:
            pre += light.add * alpha[..., None]
    else:
        pre = cv2.multiply(fg, cv2.merge((alpha, alpha, alpha)), dtype=draw.CV_32F)
    if blur is not None:
        both = blur(cv2.merge((*cv2.split(pre), alpha)))
        pre = np.ascontiguousarray(both[..., :3])
        alpha = np.ascontiguousarray(both[..., 3])
    a3 = cv2.merge((alpha, alpha, alpha))
    out = cv2.add(cv2.multiply(bg, 1.0 - a3, dtype=draw.CV_32F), pre)
    img[y0:y1, x0:x1] = cv2.convertScaleAbs(np.maximum(out, 0, out=out))
    return x0, y0, x1, y1


def _frame(rng: np.random.Generator, img: np.ndarray, quad: np.ndarray) -> None:
    """A plate holder / recess around the plate (outside its corners: never part of the label)."""
    fx, fy = rng.uniform(0.01, 0.05), rng.uniform(0.04, 0.2)
    outer = _map_unit(quad, [(-fx, -fy), (1 + fx, -fy), (1 + fx, 1 + fy), (-fx, 1 + fy)])
    g = rng.uniform(5, 70) if rng.random() < 0.75 else rng.uniform(120, 230)
    colour = np.minimum(np.maximum(g + rng.normal(0, 6, 3), 0), 255)
    src = np.empty((16, 64, 3), np.uint8)
    src[:] = colour.astype(np.uint8)
    alpha = draw.rounded_mask(16, 64, rng.uniform(0, 4))
    composite(rng, img, src, alpha, outer, rect_edges=True)


def _map_unit(quad: np.ndarray, uv: list[tuple[float, float]]) -> np.ndarray:
    unit = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
    h = cv2.getPerspectiveTransform(unit, quad.astype(np.float32))
    return cv2.perspectiveTransform(np.array([uv], np.float32), h)[0]


def paste_items(rng: np.random.Generator, img: np.ndarray, count: int, render: Renderer,
                width_range: tuple[float, float], taken: list[np.ndarray],
                dark_map: Callable[[], np.ndarray]) -> list[Pasted]:
    """Render and paste up to ``count`` items in place; ``taken`` (padded boxes) grows as we go."""
    H, W = img.shape[:2]
    out: list[Pasted] = []
    for _ in range(count):
        wfrac = _sample_width_frac(rng, width_range)
        aspect, draw_item = render(rng)
        quad0 = random_pose_quad(rng, aspect)
        target_w = max(wfrac * W, 6.0)
        quad0 *= target_w / float(quad0[:, 0].max() - quad0[:, 0].min())
        quad = _place(rng, (H, W), quad0, taken, dark_map)
        if quad is None:
            continue
        # render at about the on-screen size: sharp enough, and no aliasing from big downscales
        side_h = max(np.linalg.norm(quad[3] - quad[0]), np.linalg.norm(quad[2] - quad[1]))
        render_h = min(max(int(round(side_h * rng.uniform(1.0, 1.4))), 12), 96)
        src, src_alpha, rect_edges = draw_item(render_h)
        quad = quad.astype(np.float32)
        if rect_edges and rng.random() < FRAME_P:
            _frame(rng, img, quad)
        roi = composite(rng, img, src, src_alpha, quad, rect_edges)
        lo, hi = quad.min(axis=0), quad.max(axis=0)
        taken.append(_pad_box(np.array([lo[0], lo[1], hi[0], hi[1]]), 0.1, 3))
        out.append(Pasted(quad, roi))
    return out


def render_plate_item(layout: str | None = None, layouts: Sequence[str] | None = None) -> Renderer:
    """Plates of ``layout``, or of one drawn from ``layouts`` (default: every layout) each time."""
    choices = tuple(layouts or plates.LAYOUTS)

    def prepare(rng: np.random.Generator) -> tuple[float, Draw]:
        lay = layout if layout is not None else choices[int(rng.integers(len(choices)))]
        plates.check_layout(lay)
        size = plates.layout_size_mm(rng, lay)

        def draw_item(height_px: int) -> tuple[np.ndarray, np.ndarray, bool]:
            img, alpha, _ = plates.render_plate_rgba(rng, lay, height_px, size_mm=size)
            return img, alpha, True

        return size[0] / size[1], draw_item

    return prepare


def recompress(rng: np.random.Generator, img: np.ndarray, rois: Sequence[tuple[int, int, int, int]],
               quality: int | None = None, full_p: float = FULL_JPEG_P) -> np.ndarray:
    """JPEG re-compression at a random quality (30-95), whole image or around ``rois`` only.

    Region mode re-encodes a generous, 16-pixel-aligned window around each pasted item, on the
    photo's own JPEG block grid, so the pasted pixels get real JPEG artefacts without paying for
    the whole frame every time.
    """
    q = int(quality if quality is not None else round(30 + 65 * rng.random() ** 0.7))
    params = [cv2.IMWRITE_JPEG_QUALITY, q]
    if not rois or rng.random() < full_p:
        ok, buf = cv2.imencode(".jpg", img, params)
        return cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else img
    H, W = img.shape[:2]
    for x0, y0, x1, y1 in rois:
        m = 16
        a0, b0 = max((x0 - m) // 16 * 16, 0), max((y0 - m) // 16 * 16, 0)
        a1, b1 = min(-(-(x1 + m) // 16) * 16, W), min(-(-(y1 + m) // 16) * 16, H)
        ok, buf = cv2.imencode(".jpg", img[b0:b1, a0:a1], params)
        if ok:
            img[b0:b1, a0:a1] = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return img


def dark_map_of(img: np.ndarray) -> Callable[[], np.ndarray]:
    """Lazily computed coarse brightness map (for 'darker, car-like' placement)."""
    cache: list[np.ndarray] = []

    def get() -> np.ndarray:
        if not cache:
            small = cv2.resize(img[::8, ::8], (32, 18), interpolation=cv2.INTER_AREA)
            cache.append(small.astype(np.float32).mean(axis=2))
        return cache[0]

    return get


def padded_boxes(avoid_boxes: np.ndarray | None, frac: float = 0.15, px: float = 4.0) -> list[np.ndarray]:
    if avoid_boxes is None:
        return []
    boxes = np.asarray(avoid_boxes, dtype=np.float64).reshape(-1, 4)
    return [_pad_box(b, frac, px) for b in boxes]


def paste_plates(rng: np.random.Generator, image_bgr: np.ndarray, count: int,
                 width_range: tuple[float, float] = (0.03, 0.45), avoid_boxes: np.ndarray | None = None,
                 layout: str | None = None, jpeg: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Paste ``count`` random plates onto a copy of ``image_bgr``; returns (image, corners (n, 4, 2)).

    Corners are TL, TR, BR, BL of each plate's outer boundary in image pixel-edge coordinates.
    ``n`` is less than ``count`` when no free spot is found (``avoid_boxes`` are padded and kept
    clear, as are the plates already pasted).
    """
    img = np.ascontiguousarray(image_bgr).copy()
    taken = padded_boxes(avoid_boxes)
    pasted = paste_items(rng, img, count, render_plate_item(layout), width_range, taken, dark_map_of(img))
    if jpeg:
        img = recompress(rng, img, [p.roi for p in pasted])
    corners = np.array([p.quad for p in pasted], np.float32).reshape(-1, 4, 2)
    return img, corners
