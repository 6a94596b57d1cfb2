"""Training-sample construction (numpy/cv2 only): detector crops with box targets and landmark crops
with corner targets. Synthetic plates come from ``model_training.synth`` when it is available."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import cv2
import numpy as np

from model_store.runtime import crop_windows, encode_boxes
from model_training.evaluate import near_box, near_share
from plateveil.geometry import box_iou, crop_transform, quad_to_box, to_crop_norm

logger = logging.getLogger(__name__)


_SYNTH_FAILURES = {"count": 0}


def _synth():
    try:
        from model_training import synth
    except Exception:  # the generator is optional: real-only training goes on without it
        return None
    return synth if hasattr(synth, "synth_scene") else None


@dataclass
class Photo:
    """A training photo held in memory at a bounded size, with boxes and corners in its pixels; ``ignore``:
    regions that are neither plate nor background (``data.Sample.ignore``); ``negatives``: known non-plates
    (``data.Sample.negatives``, a reviewer's removed false concealments)."""

    image: np.ndarray
    boxes: np.ndarray
    corners: np.ndarray
    source: str
    ignore: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    negatives: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))


def load_photos(samples: list[Any], max_side: int = 960) -> list[Photo]:
    photos = []
    for s in samples:
        img = s.image
        scale = min(1.0, max_side / max(img.shape[:2]))
        if scale < 1.0:
            img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        empty = np.zeros((0, 4), np.float32)
        photos.append(Photo(img, s.boxes * scale, s.corners * scale, s.source,
                            np.asarray(getattr(s, "ignore", empty), np.float32).reshape(-1, 4) * scale,
                            np.asarray(getattr(s, "negatives", empty), np.float32).reshape(-1, 4) * scale))
    return photos


def photometric(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    x = img.astype(np.float32)
    if rng.random() < 0.8:
        x = x * rng.uniform(0.6, 1.4) + rng.uniform(-30, 30)
    if rng.random() < 0.3:
        gray = x.mean(axis=2, keepdims=True)
        x = gray + (x - gray) * rng.uniform(0.0, 1.3)
    if rng.random() < 0.2:
        x = x + rng.normal(0, rng.uniform(2, 8), x.shape)
    x = np.clip(x, 0, 255).astype(np.uint8)
    if rng.random() < 0.2:
        k = int(rng.choice([3, 5]))
        x = cv2.GaussianBlur(x, (k, k), 0)
    return x


def low_resolution(rng: np.random.Generator, crop: np.ndarray, cfg: dict[str, Any]) -> np.ndarray:
    """The crop as a distant plate yields it: a plate of 8-40 px, JPEG-compressed, upsampled to the input.

    Small plates in small photos reach the landmark model as a few upsampled pixels; without this the score
    learns "sharp means plate" from the mostly sharp training plates and rejects them. Applied to negatives as
    often as to positives, so blur says nothing about the class."""
    plate_w = cfg["input_w"] / (1.0 + 2.0 * cfg["expand_x"])       # the plate's width inside the crop
    scale = float(np.exp(rng.uniform(np.log(8.0), np.log(40.0)))) / plate_w
    if scale >= 1.0:
        return crop
    h, w = crop.shape[:2]
    small = cv2.resize(crop, (max(2, round(w * scale)), max(2, round(h * scale))), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        ok, enc = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 90))])
        if ok:
            small = cv2.imdecode(enc, cv2.IMREAD_COLOR)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def flip_boxes(boxes: np.ndarray, width: float) -> np.ndarray:
    """x1y1x2y2 boxes mirrored left-right in an image ``width`` wide."""
    if not len(boxes):
        return boxes
    return np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], axis=1)


class SynthPool:
    """Synthetic scenes cost ~20 ms each; a pool reused under fresh random crops, scales and jitter
    (refreshing a share of it on every draw) gives the same variety at a tenth of the cost."""

    def __init__(self, photos: list[Photo], size: int = 300, refresh: float = 0.1,
                 layouts: Sequence[str] | None = None) -> None:
        self.photos, self.size, self.refresh, self.layouts = photos, size, refresh, layouts
        self.pool: list[Photo] = []

    def draw(self, rng: np.random.Generator) -> Photo | None:
        if len(self.pool) < self.size or rng.random() < self.refresh:
            made = make_synthetic(rng, self.photos[int(rng.integers(len(self.photos)))], self.layouts)
            if made is None:
                return None
            if len(self.pool) < self.size:
                self.pool.append(made)
            else:
                self.pool[int(rng.integers(self.size))] = made
            return made
        return self.pool[int(rng.integers(len(self.pool)))]


def with_synthetic(rng: np.random.Generator, photo: Photo, p: float, pool: SynthPool | None = None) -> Photo:
    """With probability ``p``, a photo with synthetic plates (exact corners) instead of ``photo``."""
    if rng.random() >= p:
        return photo
    made = pool.draw(rng) if pool is not None else make_synthetic(rng, photo)
    return made if made is not None else photo


def make_synthetic(rng: np.random.Generator, photo: Photo, layouts: Sequence[str] | None = None) -> Photo | None:
    """Paste synthetic plates (of ``layouts``, default every layout) onto a copy of ``photo``; None when the
    generator is unavailable."""
    synth = _synth()
    if synth is None:
        return None
    try:
        img, corners = synth.synth_scene(rng, photo.image, existing_boxes=np.concatenate([photo.boxes, photo.ignore]),
                                         max_plates=3,
                                         negatives=True, layouts=layouts)
    except Exception:
        _SYNTH_FAILURES["count"] += 1
        if _SYNTH_FAILURES["count"] <= 3:
            logger.exception("synthetic scene failed; using the real photo alone")
        return None
    corners = np.asarray(corners, np.float32).reshape(-1, 4, 2)
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1) if len(corners) else np.zeros((0, 4))
    return Photo(img, np.concatenate([photo.boxes, boxes]).astype(np.float32),
                 np.concatenate([photo.corners, corners]).astype(np.float32), photo.source + "+synth",
                 photo.ignore, photo.negatives)


class DetectorSampler:
    """Random crops (``size`` x ``size``) at around the inference scale, with SSD targets."""

    def __init__(self, photos: list[Photo], cfg: dict[str, Any], size: int = 320, synth_p: float = 0.4,
                 seed: int = 0, layouts: Sequence[str] | None = None,
                 source_weights: Mapping[str, float] | None = None) -> None:
        """``source_weights``: how much more often a photo of a folder (its first path part) is drawn than one
        of a folder not named (1); None: every photo alike (the draws of the 1.10 and 2.0 recipes)."""
        from model_store.runtime import anchors_for

        self.photos, self.cfg, self.size, self.synth_p = photos, cfg, size, synth_p
        self.rng = np.random.default_rng(seed)
        self.p: np.ndarray | None = None
        if source_weights:
            unknown = set(source_weights) - {ph.source.split("/")[0] for ph in photos}
            if unknown:
                raise ValueError(f"source_weights name folders with no training photo: {', '.join(sorted(unknown))}")
            w = np.array([float(source_weights.get(ph.source.split("/")[0], 1.0)) for ph in photos])
            self.p = w / w.sum()
        self.pool = SynthPool(photos, layouts=layouts)
        a = anchors_for(cfg["levels"], size, size)
        self.anchors = a
        self.anchor_corners = np.stack([a[:, 0] - a[:, 2] / 2, a[:, 1] - a[:, 3] / 2,
                                        a[:, 0] + a[:, 2] / 2, a[:, 1] + a[:, 3] / 2], axis=1)

    def sample(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng, size = self.rng, self.size
        photo = self.photos[int(rng.integers(len(self.photos)) if self.p is None else rng.choice(len(self.p), p=self.p))]
        photo = with_synthetic(rng, photo, self.synth_p, self.pool)
        img, boxes, ignore = photo.image, photo.boxes.copy(), photo.ignore.copy()
        h, w = img.shape[:2]
        base = self.cfg["long_side"] / max(h, w)
        scale = base * float(np.exp(rng.uniform(np.log(0.5), np.log(1.6))))
        nh, nw = max(8, int(h * scale)), max(8, int(w * scale))
        # crop window in scaled coordinates, biased towards a plate
        if len(boxes) and rng.random() < 0.7:
            b = boxes[int(rng.integers(len(boxes)))] * scale
            cx = rng.uniform(b[2] - size + 8, b[0] - 8) if b[2] - b[0] < size - 16 else (b[0] + b[2] - size) / 2
            cy = rng.uniform(b[3] - size + 8, b[1] - 8) if b[3] - b[1] < size - 16 else (b[1] + b[3] - size) / 2
            x0, y0 = cx, cy
        else:
            x0, y0 = rng.uniform(min(0, nw - size), max(0, nw - size)), rng.uniform(min(0, nh - size), max(0, nh - size))
        m = np.array([[scale, 0, -x0], [0, scale, -y0]], dtype=np.float64)
        crop = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        shift = np.array([x0, y0, x0, y0], dtype=np.float32)
        bx, ig = boxes * scale - shift, ignore * scale - shift
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
            bx, ig = flip_boxes(bx, size), flip_boxes(ig, size)
        crop = photometric(rng, np.ascontiguousarray(crop))
        cls_t, box_t = self.targets(bx, ig)
        x = (crop[:, :, ::-1].astype(np.float32) / 255.0 - np.asarray(self.cfg["mean"], np.float32)) \
            / np.asarray(self.cfg["std"], np.float32)
        return x.transpose(2, 0, 1), cls_t, box_t

    def targets(self, boxes: np.ndarray, ignore: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """cls: 1 plate, 0 background, -1 ignore; box: regression targets (zeros where not positive).

        ``ignore`` regions (unsure plates, ``Sample.ignore``): the anchors on them (IoU >= 0.2, or centre inside
        one) are -1, never background; a plate's own positive anchors stay positive."""
        k = len(self.anchors)
        cls_t = np.zeros(k, dtype=np.float32)
        box_t = np.zeros((k, 4), dtype=np.float32)
        if ignore is not None and len(ignore):
            cls_t[self.anchors_on(ignore)] = -1
        if not len(boxes):
            return cls_t, box_t
        full = boxes.copy()
        clipped = np.clip(boxes, 0, self.size)
        area_full = np.prod(np.clip(full[:, 2:] - full[:, :2], 1e-3, None), axis=1)
        area_vis = np.prod(np.clip(clipped[:, 2:] - clipped[:, :2], 0, None), axis=1)
        vis = area_vis / area_full
        wid = clipped[:, 2] - clipped[:, 0]
        good = (vis >= 0.6) & (wid >= 6)
        partial = (area_vis > 0) & ~good
        if partial.any():
            iou_p = box_iou(self.anchor_corners, clipped[partial])
            cls_t[iou_p.max(axis=1) >= 0.3] = -1
        gts = clipped[good]
        if not len(gts):
            return cls_t, box_t
        iou = box_iou(self.anchor_corners, gts)
        best_gt = iou.argmax(axis=1)
        best_iou = iou.max(axis=1)
        ign = (best_iou >= 0.35) & (best_iou < 0.5)
        cls_t[ign] = -1
        pos = best_iou >= 0.5
        best_anchor = iou.argmax(axis=0)
        ok = iou[best_anchor, np.arange(len(gts))] > 0.15
        pos[best_anchor[ok]] = True
        best_gt[best_anchor[ok]] = np.arange(len(gts))[ok]
        cls_t[pos] = 1
        box_t[pos] = encode_boxes(self.anchors[pos], gts[best_gt[pos]], self.cfg["box_stds"])
        return cls_t, box_t

    def anchors_on(self, regions: np.ndarray) -> np.ndarray:
        """Mask of the anchors that overlap any of ``regions`` (IoU >= 0.2) or have their centre inside one."""
        r = np.asarray(regions, np.float64).reshape(-1, 4)
        a = self.anchors
        inside = ((a[:, None, 0] >= r[None, :, 0]) & (a[:, None, 0] <= r[None, :, 2])
                  & (a[:, None, 1] >= r[None, :, 1]) & (a[:, None, 1] <= r[None, :, 3])).any(axis=1)
        return inside | (box_iou(self.anchor_corners, r).max(axis=1) >= 0.2)

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xs, cs, bs = zip(*(self.sample() for _ in range(n)), strict=True)
        return np.stack(xs), np.stack(cs), np.stack(bs)


class LandmarkSampler:
    """Expanded crops around jittered plate boxes (positives with corners) and non-plates."""

    def __init__(self, photos: list[Photo], cfg: dict[str, Any], synth_p: float = 0.6, neg_p: float = 0.4,
                 seed: int = 0, hard_p: float = 0.5, lowres_p: float = 0.0,
                 layouts: Sequence[str] | None = None, context_p: float = 0.0,
                 synth_neg_p: float = 0.0, synth_neg_kinds: Sequence[str] | None = None) -> None:
        self.photos, self.cfg, self.synth_p, self.neg_p = photos, cfg, synth_p, neg_p
        self.lowres_p = lowres_p  # share of crops (either class) resampled as if the plate were 8-40 px wide
        self.context_p = context_p  # share of the other negatives taken beside a labelled plate (_context_box)
        self.synth_neg_p = synth_neg_p  # share of the other negatives that are generated ones (_synthetic_negative)
        self.synth_neg_kinds = synth_neg_kinds  # which of synth.NEGATIVE_KINDS those are (None: every kind)
        self.rng = np.random.default_rng(seed)
        self.pool = SynthPool(photos, layouts=layouts)
        self.hard_negatives: list[tuple[int, np.ndarray]] = []  # (photo index, box) from detector FPs
        # and the known non-plates of the photos themselves (a reviewer's removed false concealments)
        self.known_negatives = [(i, b) for i, p in enumerate(photos) for b in p.negatives]
        self.hard_p = hard_p  # share of negatives drawn from hard_negatives when there are any

    def _crop(self, img: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, Any]:
        cfg = self.cfg
        win = crop_windows([cast(tuple[float, float, float, float], tuple(float(v) for v in box))], cfg)[0]
        m = crop_transform(win, cfg["input_w"], cfg["input_h"])
        crop = cv2.warpAffine(img, m, (cfg["input_w"], cfg["input_h"]), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        return crop, win

    def _jitter(self, box: np.ndarray) -> np.ndarray:
        rng = self.rng
        w, h = box[2] - box[0], box[3] - box[1]
        cx = (box[0] + box[2]) / 2 + rng.normal(0, 0.08) * w
        cy = (box[1] + box[3]) / 2 + rng.normal(0, 0.12) * h
        w *= float(np.exp(rng.normal(0, 0.15)))
        h *= float(np.exp(rng.normal(0, 0.2)))
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dtype=np.float32)

    @staticmethod
    def _clear_of_plates(b: np.ndarray, photo: Photo) -> bool:
        """Whether box ``b`` stays (IoU < 0.05) off every plate's and every ignore region's "near" region (the
        evaluation's padding), and has no more than 10% of its area inside an ignore region."""
        regions = np.concatenate([photo.boxes.reshape(-1, 4), photo.ignore.reshape(-1, 4)])
        if not len(regions):
            return True
        near = np.stack([near_box(p) for p in regions])
        if box_iou(b[None], near).max() >= 0.05:
            return False
        if len(photo.ignore):
            return near_share(b, photo.ignore) < 0.1
        return True

    def _negative_box(self, photo: Photo) -> np.ndarray | None:
        rng = self.rng
        h, w = photo.image.shape[:2]
        for _ in range(10):
            bw = float(np.exp(rng.uniform(np.log(12), np.log(max(13, w * 0.5)))))
            bh = bw / rng.uniform(1.2, 6.0)
            x1, y1 = rng.uniform(0, max(1, w - bw)), rng.uniform(0, max(1, h - bh))
            b = np.array([x1, y1, x1 + bw, y1 + bh], dtype=np.float32)
            if self._clear_of_plates(b, photo):
                return b
        return None

    def _context_box(self, photo: Photo) -> np.ndarray | None:
        """A box of about a plate's size beside one of ``photo``'s labelled plates (up to 4 widths to either
        side, 6 heights above, 2 below): the tail lights, badges, model names and grilles around a plate,
        which is where the detector's false positives on car photos sit. None when the photo has no plate
        or no such box fits in it clear of the plates."""
        if not len(photo.boxes):
            return None
        rng = self.rng
        h, w = photo.image.shape[:2]
        p = photo.boxes[int(rng.integers(len(photo.boxes)))]
        pw, ph = float(p[2] - p[0]), float(p[3] - p[1])
        for _ in range(10):
            bw = pw * float(np.exp(rng.normal(0, 0.35)))
            bh = bw / rng.uniform(1.3, 5.0)
            cx = (p[0] + p[2]) / 2 + rng.uniform(-4, 4) * pw
            cy = (p[1] + p[3]) / 2 + rng.uniform(-6, 2) * ph
            b = np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], dtype=np.float32)
            if b[0] >= 0 and b[1] >= 0 and b[2] <= w and b[3] <= h and bw >= 6 and self._clear_of_plates(b, photo):
                return b
        return None

    def _synthetic_negative(self, photo: Photo) -> tuple[np.ndarray, np.ndarray] | None:
        """(image, box): ``photo`` with one generated non-plate pasted clear of its plates (a sign, sticker,
        dealer badge, bumper lettering, grille, logo...: ``synth.negatives``), and that item's box. Without
        these the generator's negatives reach the landmark model only when a random crop happens on one;
        lettering on a car body is what it most often took for a plate. None without the generator or room."""
        synth = _synth()
        if synth is None:
            return None
        img, quads = synth.paste_negatives(self.rng, photo.image, 1, avoid_boxes=photo.boxes,
                                           kinds=self.synth_neg_kinds)
        if not len(quads):
            return None
        return img, np.asarray(quad_to_box(quads[0]), np.float32)

    def sample(self) -> tuple[np.ndarray, np.ndarray, float, float]:
        """(crop CHW float, corners (8,) normalised, label, corner weight)."""
        rng = self.rng
        photo = self.photos[int(rng.integers(len(self.photos)))]
        corners = np.zeros(8, dtype=np.float32)
        weight, label = 0.0, 0.0
        if rng.random() < self.neg_p:
            box: np.ndarray | None
            image = photo.image
            hard = self.hard_negatives + self.known_negatives if self.known_negatives else self.hard_negatives
            if hard and rng.random() < self.hard_p:
                # a detector false positive, on the photo it was found in, jittered like a detection
                j, hbox = hard[int(rng.integers(len(hard)))]
                image = self.photos[j].image
                box = self._jitter(hbox)
            elif rng.random() < self.synth_neg_p:
                made = self._synthetic_negative(photo)
                if made is None:
                    return self.sample()
                image, box = made
                box = self._jitter(box)
            elif rng.random() < self.context_p:
                box = self._context_box(photo)
            else:
                box = self._negative_box(photo)
            if box is None:
                return self.sample()
            crop, _ = self._crop(image, box)
        else:
            photo = with_synthetic(rng, photo, self.synth_p, self.pool)
            if not len(photo.boxes):
                return self.sample()
            i = int(rng.integers(len(photo.boxes)))
            box = photo.boxes[i]
            if box[2] - box[0] < 6:
                return self.sample()
            crop, win = self._crop(photo.image, self._jitter(box))
            quad = photo.corners[i]
            if np.isnan(quad).any():
                quad = np.array([[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]])
                weight = 0.3  # box corners approximate a near-frontal plate
            else:
                weight = 1.0
            corners = to_crop_norm(quad, win).reshape(-1).astype(np.float32)
            label = 1.0
        if rng.random() < self.lowres_p:
            crop = low_resolution(rng, crop, self.cfg)
        crop = photometric(rng, crop)
        x = (crop[:, :, ::-1].astype(np.float32) / 255.0 - np.asarray(self.cfg["mean"], np.float32)) \
            / np.asarray(self.cfg["std"], np.float32)
        return x.transpose(2, 0, 1), corners, label, weight

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        xs, cs, ls, ws = zip(*(self.sample() for _ in range(n)), strict=True)
        return np.stack(xs), np.stack(cs), np.asarray(ls, np.float32), np.asarray(ws, np.float32)
