"""Load a model bundle and find plates in a photo. No deep-learning framework is imported here.

The bundle format (file names, the ``model.json`` schema, versions) is :mod:`model_store.bundle`'s;
the backends (:mod:`model_store.backends`) run the two graphs.

Detector: a fully-convolutional SSD-style net. Input: the photo resized so its long side is
``long_side`` and padded to a multiple of ``pad_to``, BGR->RGB, ``(x/255 - mean)/std``, NCHW.
Outputs: for each level, a class-logit map (1, A, H, W) then a box map (1, 4A, H, W), A = number of
anchor shapes of that level. Anchors are built here from ``levels`` (stride, list of [w, h]).

Landmarks: input (N, 3, crop_h, crop_w), a detector box expanded by ``expand_x``/``expand_y`` and
resampled; outputs corners (N, 8) in crop-normalised coordinates (TL, TR, BR, BL) and plate
logits (N, 2).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from model_store.backends import DEFAULT_BACKEND, get_backend
from model_store.bundle import PARTS, default_model_dir, detector_config, landmark_config, read_config
from model_store.errors import ModelLoadError
from plateveil.geometry import (
    CropWindow,
    box_to_quad,
    crop_transform,
    drop_enclosing,
    expand_box,
    is_convex_quad,
    pad_quad,
    polygon_area,
    to_image,
)


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"box": [round(v, 2) for v in self.box], "score": round(self.score, 4)}


@dataclass(frozen=True)
class PlateFinding:
    """One concealed region: ``polygon`` (4 points, image pixels), the landmark plate score,
    the detector's box and score, and whether the corners came from the landmark model."""

    polygon: tuple[tuple[float, float], ...]
    score: float
    box: tuple[float, float, float, float]
    det_score: float
    refined: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "polygon": [[round(x, 1), round(y, 1)] for x, y in self.polygon],
            "score": round(self.score, 4),
            "box": [round(v, 1) for v in self.box],
            "det_score": round(self.det_score, 4),
            "refined": self.refined,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlateFinding:
        return cls(
            polygon=tuple((float(x), float(y)) for x, y in d["polygon"]),
            score=float(d["score"]),
            box=tuple(float(v) for v in d["box"]),  # type: ignore[arg-type]
            det_score=float(d["det_score"]),
            refined=bool(d.get("refined", True)),
        )


@dataclass
class Timings:
    detect: float = 0.0
    landmarks: float = 0.0


# ----------------------------------------------------------------------------------------------
# Detector pre/post-processing (shared by every backend and by training)


def letterbox_shape(height: int, width: int, long_side: int, pad_to: int) -> tuple[float, int, int]:
    """Scale and padded (H, W) of the network input for a photo of ``height`` x ``width``."""
    scale = long_side / max(height, width)
    nh, nw = max(1, round(height * scale)), max(1, round(width * scale))
    ph, pw = -(-nh // pad_to) * pad_to, -(-nw // pad_to) * pad_to
    return scale, ph, pw


def _normalise_blob(bgr: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """(1, 3, H, W) float32 of ``(rgb / 255 - mean) / std``: OpenCV's blob (one C++ pass for the cast, the
    channel swap and the layout) then two in-place broadcasts; ~6x faster than the numpy expression."""
    blob = cv2.dnn.blobFromImage(bgr, scalefactor=1.0 / 255.0, swapRB=True, crop=False)
    blob -= np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
    blob *= (1.0 / np.asarray(std, np.float32)).reshape(1, 3, 1, 1)
    return blob


def preprocess(image_bgr: np.ndarray, long_side: int, pad_to: int, mean: list[float], std: list[float]
               ) -> tuple[np.ndarray, float]:
    """Resize so the long side is ``long_side``, normalise, pad bottom/right to ``pad_to`` with 0 (the mean)."""
    h, w = image_bgr.shape[:2]
    scale, ph, pw = letterbox_shape(h, w, long_side, pad_to)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    blob = _normalise_blob(cv2.resize(image_bgr, (nw, nh), interpolation=interp), mean, std)
    if (nh, nw) == (ph, pw):
        return blob, scale
    out = np.zeros((1, 3, ph, pw), dtype=np.float32)
    out[:, :, :nh, :nw] = blob
    return out, scale


@lru_cache(maxsize=64)
def _anchors_cached(levels_json: str, height: int, width: int) -> np.ndarray:
    levels = json.loads(levels_json)
    out = []
    for level in levels:
        stride = level["stride"]
        fh, fw = -(-height // stride), -(-width // stride)
        shapes = np.asarray(level["anchors"], dtype=np.float32)  # (A, 2) w, h
        ys, xs = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
        cx = (xs + 0.5) * stride
        cy = (ys + 0.5) * stride
        a = np.zeros((fh, fw, len(shapes), 4), dtype=np.float32)
        a[..., 0] = cx[..., None]
        a[..., 1] = cy[..., None]
        a[..., 2] = shapes[:, 0]
        a[..., 3] = shapes[:, 1]
        out.append(a.reshape(-1, 4))
    return np.concatenate(out, axis=0)


def anchors_for(levels: list[dict[str, Any]], height: int, width: int) -> np.ndarray:
    """Anchors (K, 4) as (cx, cy, w, h) in network-input pixels, in the flattening order of
    :func:`flatten_outputs`: level, then row, column, anchor shape."""
    return _anchors_cached(json.dumps(levels, sort_keys=True), height, width)


def flatten_outputs(outputs: list[np.ndarray], num_levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-level (cls, box) maps -> (K,) logits and (K, 4) box offsets for image 0."""
    cls_parts, box_parts = [], []
    for i in range(num_levels):
        cls_map, box_map = outputs[2 * i][0], outputs[2 * i + 1][0]
        a = cls_map.shape[0]
        cls_parts.append(cls_map.transpose(1, 2, 0).reshape(-1))
        box_parts.append(box_map.reshape(a, 4, *box_map.shape[1:]).transpose(2, 3, 0, 1).reshape(-1, 4))
    return np.concatenate(cls_parts), np.concatenate(box_parts)


def encode_boxes(anchors: np.ndarray, boxes: np.ndarray, stds: list[float]) -> np.ndarray:
    """Regression targets of ``boxes`` (K, 4 corners) against ``anchors`` (K, 4 cx,cy,w,h)."""
    bw = np.maximum(boxes[:, 2] - boxes[:, 0], 1e-3)
    bh = np.maximum(boxes[:, 3] - boxes[:, 1], 1e-3)
    bx, by = boxes[:, 0] + bw / 2, boxes[:, 1] + bh / 2
    return np.stack([
        (bx - anchors[:, 0]) / anchors[:, 2] / stds[0],
        (by - anchors[:, 1]) / anchors[:, 3] / stds[1],
        np.log(bw / anchors[:, 2]) / stds[2],
        np.log(bh / anchors[:, 3]) / stds[3],
    ], axis=1).astype(np.float32)


def decode_boxes(anchors: np.ndarray, offsets: np.ndarray, stds: list[float]) -> np.ndarray:
    cx = anchors[:, 0] + offsets[:, 0] * stds[0] * anchors[:, 2]
    cy = anchors[:, 1] + offsets[:, 1] * stds[1] * anchors[:, 3]
    w = anchors[:, 2] * np.exp(np.clip(offsets[:, 2] * stds[2], -6, 6))
    h = anchors[:, 3] * np.exp(np.clip(offsets[:, 3] * stds[3], -6, 6))
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, top_k: int) -> np.ndarray:
    """Greedy non-maximum suppression: indices of the boxes kept, best score first, at most ``top_k``. The IoU is
    :func:`plateveil.geometry.box_iou`'s, computed with the same float64 operations on coordinate columns (the
    same values, without its per-call reshaping: this loop runs once per kept box)."""
    order = np.argsort(-scores)
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x1, y1, x2, y2 = (np.ascontiguousarray(b[:, k]) for k in range(4))
    area = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    keep: list[int] = []
    while order.size and len(keep) < top_k:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        rest = order[1:]
        # (np.maximum(., 0) is np.clip(., 0, None) without its per-call argument checks)
        w = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0.0)
        h = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0.0)
        inter = w * h
        ious = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[ious <= iou]
    return np.asarray(keep, dtype=np.int64)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def crop_windows(boxes: list[tuple[float, float, float, float]], cfg: dict[str, Any]) -> list[CropWindow]:
    return [expand_box(b, cfg["expand_x"], cfg["expand_y"], cfg.get("min_aspect", 1.0),
                       cfg.get("max_aspect", 4.0)) for b in boxes]


def extract_crops(image_bgr: np.ndarray, windows: list[CropWindow], cfg: dict[str, Any]) -> np.ndarray:
    """(N, 3, crop_h, crop_w) float32 network input for the landmark model."""
    cw, ch = cfg["input_w"], cfg["input_h"]
    batch = np.zeros((len(windows), 3, ch, cw), dtype=np.float32)
    for i, win in enumerate(windows):
        m = crop_transform(win, cw, ch)
        crop = cv2.warpAffine(image_bgr, m, (cw, ch), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        batch[i] = _normalise_blob(crop, cfg["mean"], cfg["std"])[0]
    return batch


def enclosing_rule(landmarks_cfg: dict[str, Any]) -> tuple[float, float] | None:
    """(cover, area ratio) of the bundle's ``geometry.drop_enclosing`` rule; None where it is off (bundles
    before 1.7.0 have no such keys)."""
    if not landmarks_cfg.get("enclosing_ratio"):
        return None
    return float(landmarks_cfg["enclosing_cover"]), float(landmarks_cfg["enclosing_ratio"])


def large_region_rule(landmarks_cfg: dict[str, Any]) -> tuple[float, float] | None:
    """(photo fraction, plate score) of the bundle's bounded-region rule: a region whose unpadded quad covers more
    than that fraction of the photo stays only with at least that plate score. Aimed at the worst false
    concealments (half a building, a bus's destination sign); a region that large may also be a close-up plate,
    hence the score that lets it stay. None where it is off: no shipped bundle sets it (measured on 2.0.0 and the
    3.0 candidates, every setting lost plates: model card, "bounded-region rule")."""
    fraction = landmarks_cfg.get("large_region_fraction")
    if not fraction:
        return None
    return float(fraction), float(landmarks_cfg.get("large_region_threshold", 1.01))


def too_large(quad_area: float, photo_area: float, score: float, rule: tuple[float, float] | None) -> bool:
    """Whether the bounded-region rule drops a region of ``quad_area`` pixels with plate score ``score``."""
    return rule is not None and quad_area > rule[0] * photo_area and score < rule[1]


def plate_score(lm_score: np.ndarray | float, det_score: np.ndarray | float, det_weight: float) -> np.ndarray:
    """The plate/not-plate score a candidate is kept by: the landmark model's probability, and with
    ``det_weight`` > 0 the detector's as a second opinion, added in logit space (a product of odds:
    ``sigmoid(logit(lm) + det_weight * logit(det))``). The two models err on different things (the
    landmark model on a big frontal plate it sees cropped oddly, the detector on plate-shaped lettering), so
    each one's confidence rescues what the other doubts."""
    if not det_weight:
        return np.asarray(lm_score)
    lm = np.clip(np.asarray(lm_score, np.float64), 1e-6, 1 - 1e-6)
    det = np.clip(np.asarray(det_score, np.float64), 1e-6, 1 - 1e-6)
    z = np.log(lm / (1 - lm)) + det_weight * np.log(det / (1 - det))
    return 1.0 / (1.0 + np.exp(-z))


# ----------------------------------------------------------------------------------------------


@dataclass
class PlateModel:
    """A loaded bundle: ``find_plates`` is the whole model half of the pipeline."""

    model_dir: Path
    config: dict[str, Any]
    backend: str
    detector: Any = field(repr=False)
    landmarks: Any = field(repr=False)

    @property
    def name(self) -> str:
        return str(self.config["name"])

    @property
    def version(self) -> str:
        return str(self.config["version"])

    @property
    def tag(self) -> str:
        """``name@version``, as written in sidecars, reports and metrics."""
        return f"{self.name}@{self.version}"

    @property
    def detector_long_side(self) -> int:
        """The detector's input long side: a photo decoded at reduced scale down to this loses nothing."""
        return int(self.config["detector"]["long_side"])

    @property
    def detector_score_threshold(self) -> float:
        """The detector's score threshold as the bundle's config says now."""
        return float(detector_config(self.config, str(self.model_dir)).score_threshold)

    def detect(self, image_bgr: np.ndarray, score_threshold: float | None = None,
               photo_size: tuple[int, int] | None = None) -> list[Detection]:
        """Detector boxes in ``image_bgr``'s pixels; with ``photo_size`` (width, height), ``image_bgr`` is a
        reduced copy of that photo and the boxes are given in the photo's pixels."""
        cfg = detector_config(self.config, str(self.model_dir))   # read on each call: tune/sweeps change config
        x, scale = preprocess(image_bgr, cfg.long_side, cfg.pad_to, cfg.mean, cfg.std)
        h, w = image_bgr.shape[:2]
        if photo_size is not None:  # the letterbox scale is then relative to the photo, not the copy
            scale *= w / photo_size[0]
            w, h = photo_size
        outputs = self.detector.run(x)
        logits, offsets = flatten_outputs(outputs, len(cfg.levels))
        anchors = anchors_for(cfg.levels, x.shape[2], x.shape[3])
        scores = sigmoid(logits)
        thr = cfg.score_threshold if score_threshold is None else score_threshold
        idx = np.nonzero(scores >= thr)[0]
        if idx.size > cfg.pre_nms_top_k:
            idx = idx[np.argsort(-scores[idx])[: cfg.pre_nms_top_k]]
        boxes = decode_boxes(anchors[idx], offsets[idx], cfg.box_stds) / scale
        keep = nms(boxes, scores[idx], cfg.nms_iou, cfg.max_detections)
        result = []
        for k in keep:
            x1, y1, x2, y2 = boxes[k]
            x1, y1, x2, y2 = max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)
            if x2 - x1 >= 2 and y2 - y1 >= 2:
                result.append(Detection((float(x1), float(y1), float(x2), float(y2)), float(scores[idx][k])))
        return result

    def refine_windows(self, detections: list[Detection]) -> list[tuple[float, float, float, float]]:
        """The photo rectangles (x1, y1, x2, y2) ``refine`` reads for ``detections``: a photo decoded only there
        gives the same plates."""
        return [(w.x1, w.y1, w.x2, w.y2) for w in crop_windows([d.box for d in detections], self.config["landmarks"])]

    def refine(self, image_bgr: np.ndarray, detections: list[Detection]) -> list[PlateFinding]:
        """Run the landmark model on each detection; keep plates, drop what it calls not-a-plate."""
        if not detections:
            return []
        lm = landmark_config(self.config, str(self.model_dir))
        cfg = self.config["landmarks"]
        windows = crop_windows([d.box for d in detections], cfg)
        batch = extract_crops(image_bgr, windows, cfg)
        corners, logits = self.landmarks.run(batch)[:2]
        plate_prob = plate_score(softmax(logits)[:, 1], np.array([d.score for d in detections]), lm.det_weight)
        findings: list[PlateFinding] = []
        quads: list[np.ndarray] = []      # unpadded, for drop_enclosing
        bounded = large_region_rule(cfg)
        photo_area = float(image_bgr.shape[0] * image_bgr.shape[1])
        for det, win, c, p in zip(detections, windows, corners, plate_prob, strict=True):
            keep = p >= lm.score_threshold or det.score >= lm.keep_detector_above
            if not keep:
                continue
            quad = to_image(c.reshape(4, 2), win)
            box_area = max((det.box[2] - det.box[0]) * (det.box[3] - det.box[1]), 1.0)
            area = polygon_area(quad)
            refined = is_convex_quad(quad) and 0.25 * box_area <= area <= 4.0 * box_area
            if not refined:
                quad = box_to_quad(det.box)
            if too_large(polygon_area(quad), photo_area, float(p), bounded):
                continue
            quads.append(quad)
            quad = pad_quad(quad, lm.margin_x, lm.margin_y)
            findings.append(PlateFinding(
                polygon=tuple((float(x), float(y)) for x, y in quad),
                score=float(p), box=det.box, det_score=det.score, refined=refined))
        rule = enclosing_rule(cfg)
        if rule and len(findings) > 1:
            keep = drop_enclosing(quads, [f.det_score for f in findings], *rule)
            findings = [findings[i] for i in sorted(keep)]
        return findings

    def find_plates(self, image_bgr: np.ndarray) -> tuple[list[PlateFinding], Timings]:
        timings = Timings()
        t0 = time.perf_counter()
        dets = self.detect(image_bgr)
        t1 = time.perf_counter()
        plates = self.refine(image_bgr, dets)
        t2 = time.perf_counter()
        timings.detect, timings.landmarks = (t1 - t0) * 1000, (t2 - t1) * 1000
        return plates, timings


def load_model(model_dir: str | Path | None = None, backend: str = DEFAULT_BACKEND, threads: int = 0) -> PlateModel:
    """Load a bundle folder (default: the shipped one) with the named backend."""
    model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
    config = read_config(model_dir)
    engine = get_backend(backend, threads=threads)
    graphs = {}
    for part in PARTS:
        files = {kind: model_dir / name for kind, name in engine.file_names(part).items()}
        missing = [str(path) for path in files.values() if not path.is_file()]
        if missing:
            raise ModelLoadError(f"model bundle {model_dir} lacks {', '.join(missing)}")
        try:
            graphs[part] = engine.load(files)
        except Exception as exc:  # a corrupt file surfaces as many exception types
            raise ModelLoadError(f"cannot load {part} from {model_dir} with {backend}: {exc}") from exc
    return PlateModel(model_dir, config, backend, graphs["detector"], graphs["landmarks"])
