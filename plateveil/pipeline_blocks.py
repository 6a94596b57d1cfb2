"""Touch only the plate: the default path of a baseline JPEG through the pipeline (issue 37).

The photo's entropy-coded data is decoded once (``jpeg_blocks.Coefficients``: its quantised DCT coefficients);
every decode below is made from those coefficients by libjpeg (no Huffman decoding again), and the output is
written from them.

1. the detector sees a copy decoded at reduced scale in the DCT (:func:`detector_copy`, ``DETECTOR_COPY``: by
   default the largest of 1/2, 1/4, 1/8 that keeps the detector's input, resized by the detector; a smaller photo
   whole), with a slightly lower score threshold (``REDUCED_THRESHOLD_MARGIN``);
2. no detection: the photo is kept as it came, metadata removed (``imaging.strip_jpeg_metadata``);
3. detections: only the MCU-aligned region holding the landmark model's crop windows is decoded at full
   resolution (``jpeg_blocks.Coefficients.decode``); the landmarks see exactly the pixels a full decode gives
   there;
4. plates: the concealment runs on the MCU-aligned region around them (with the margin its style needs), and the
   output is the original compressed stream with only the 8x8 blocks whose pixels changed replaced
   (``jpeg_blocks.changed_blocks`` + ``Coefficients.set_blocks``/``write``): no decode or re-encode of the rest of
   the photo, no generation loss outside the plates, the size of the input give or take the plates' blocks.

:func:`conceal_jpeg` returns the result, or the reason this photo cannot take this path (progressive,
arithmetic-coded, CMYK, EXIF-rotated, over the decode budget, the extension not built...): the caller then runs
today's path (decode, conceal, re-encode the whole photo) and records the reason (``PipelineResult.encoding``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from plateveil import imaging
from plateveil.conceal import Concealer
from plateveil.errors import BadImageError
from plateveil.imaging import jpeg_blocks
from plateveil.imaging.icc import _jpeg_with_icc

Rect = tuple[int, int, int, int]
REDUCED_THRESHOLD_MARGIN = 0.03
"""How much lower the detector's score threshold is on the reduced-scale copy than on the full photo."""

DETECTOR_COPY = "halves"
"""How the detector's copy of a photo at least twice its input is made (default ``halves``: with the 3.0.0 bundle,
``eighths`` lost one plate of the 60 listing photos; with 2.0.0 none). ``eighths``: decoded at the smallest of
libjpeg's DCT scales 1/8 .. 4/8 that keeps the long side at least the detector's input, then resized to that input
with INTER_LINEAR (the detector was trained on bilinear rescales: ``model_training.augment``'s warpAffine); smaller
photos are given whole; ``halves``: decoded at 1/2, 1/4 or 1/8 (the largest that keeps the long side at least the
detector's input) and resized by the detector's own preprocessing (INTER_AREA). See docs/performance.md, issue 37."""


def detector_copy(coefs: jpeg_blocks.Coefficients, lay: jpeg_blocks.Layout, long_side: int, how: str
                  ) -> np.ndarray:
    """The stored photo's pixels the detector is given (the photo itself when it is no larger than its input)."""
    import cv2

    longest = max(lay.width, lay.height)
    if how == "halves":
        reduce = next((f for f in (8, 4, 2) if -(-longest // f) >= long_side), 1)
        return coefs.decode(None, lay.width, lay.height, 8 // reduce)
    if how != "eighths":
        raise ValueError(f"unknown detector copy {how!r}: eighths or halves")
    # photos under twice the detector's input are given whole, as today (a 5/8-7/8 copy of a 1024-px photo moved
    # the validation split's plates both ways: 8 lost, 14 gained, 13 more spurious; docs/performance.md)
    n = next((k for k in range(1, 5) if -(-longest * k // 8) >= long_side), 8)
    copy = coefs.decode(None, lay.width, lay.height, n)
    if n == 8:
        return copy
    s = long_side / longest
    size = (max(1, round(lay.width * s)), max(1, round(lay.height * s)))   # the detector's letterbox size
    if (copy.shape[1], copy.shape[0]) == size:
        return copy
    return cv2.resize(copy, size, interpolation=cv2.INTER_LINEAR)


def _union(rects: Sequence[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    return (min(r[0] for r in rects), min(r[1] for r in rects), max(r[2] for r in rects), max(r[3] for r in rects))


def _contains(outer: Rect, inner: Rect) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def landmark_windows(model: Any, detections: Sequence[Any]) -> list[tuple[float, float, float, float]]:
    """The photo pixels the landmark model reads for ``detections`` (its crop windows, plus one pixel for the
    bilinear sampling); a model that does not say gets each box grown by its own size on every side."""
    if hasattr(model, "refine_windows"):
        wins = [tuple(w) for w in model.refine_windows(detections)]
    else:
        wins = []
        for d in detections:
            box = getattr(d, "box", None)
            if box is None:   # a finder whose detections carry no box: the whole photo
                return [(-math.inf, -math.inf, math.inf, math.inf)]
            x1, y1, x2, y2 = box
            w, h = x2 - x1, y2 - y1
            wins.append((x1 - w, y1 - h, x2 + w, y2 + h))
    return [(w[0] - 2, w[1] - 2, w[2] + 2, w[3] + 2) for w in wins]


def conceal_rects(concealer: Concealer, polygons: Sequence[np.ndarray], width: int, height: int
                  ) -> list[Rect]:
    """The pixels ``concealer.apply`` reads and writes for each polygon (as it computes them), clipped."""
    rects = []
    for poly in polygons:
        p = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        if len(p) < 3 or not np.isfinite(p).all():
            continue
        margin = max(0, int(math.ceil(concealer.context_margin(p))))
        x1 = max(int(math.floor(p[:, 0].min())) - 1 - margin, 0)
        y1 = max(int(math.floor(p[:, 1].min())) - 1 - margin, 0)
        x2 = min(int(math.ceil(p[:, 0].max())) + 1 + margin, width)
        y2 = min(int(math.ceil(p[:, 1].max())) + 1 + margin, height)
        if x2 > x1 and y2 > y1:
            rects.append((x1, y1, x2, y2))
    return rects


def conceal_jpeg(data: bytes, model: Any, concealer: Concealer, max_pixels: int, budget_bytes: int
                 ) -> tuple[Any, list[Any], dict[str, float], dict[str, Any]] | str:
    """(decoded detector copy or photo, plates, timings ms, encoding) with ``encoding["bytes"]`` the output; or
    why this photo takes the whole-photo path. Raises BadImageError for a photo that cannot be decoded at all."""
    why = jpeg_blocks.available()
    if why:
        return why
    t0 = time.perf_counter()
    try:
        lay = jpeg_blocks.layout(data)
    except BadImageError as exc:
        return str(exc)   # the whole-photo path says what is wrong with it
    why = jpeg_blocks.unsupported(lay)
    if why:
        return why
    # memory, from libjpeg's header: every coefficient (read once, below) + the detector's copy (BGR; the photo
    # itself under twice the detector's input); the landmark canvas is written only around the candidates
    copy_pixels = lay.width * lay.height
    if max(lay.width, lay.height) >= 2 * int(model.detector_long_side):
        copy_pixels = -(-copy_pixels // 4)
    if jpeg_blocks.coefficient_bytes(lay) + 3 * copy_pixels > budget_bytes:
        return "over the decode budget (decoded at reduced size and re-encoded)"
    try:
        coefs = jpeg_blocks.Coefficients(data)   # the one entropy decode of the photo
    except BadImageError as exc:
        return str(exc)
    with coefs:
        if coefs.warning:
            return f"corrupt JPEG data ({coefs.warning})"
        return _conceal(data, lay, coefs, t0, model, concealer, max_pixels, budget_bytes)


def _conceal(data: bytes, lay: jpeg_blocks.Layout, coefs: jpeg_blocks.Coefficients, t0: float,
             model: Any, concealer: Concealer, max_pixels: int, budget_bytes: int
             ) -> tuple[Any, list[Any], dict[str, float], dict[str, Any]] | str:
    long_side = int(model.detector_long_side)
    decoded = imaging.decode(data, max_pixels=max_pixels, budget_bytes=budget_bytes,
                             jpeg_pixels=lambda: detector_copy(coefs, lay, long_side, DETECTOR_COPY))
    if decoded.orientation != 1:
        return f"EXIF orientation {decoded.orientation} (the photo is turned upright and re-encoded)"
    t1 = time.perf_counter()
    threshold = None
    if decoded.photo_size is not None and hasattr(model, "detector_score_threshold"):
        # the reduced copy lacks the finest detail: a plate scored just over the threshold on the full photo can
        # score under it here (0.1501 -> 0.1473 in a ro-dashcam frame, 0.170 -> 0.122 in an upscaled night one);
        # the landmark model still judges every candidate: 0.03 lower kept every plate of the validation split
        # and found 3 more, at the same spurious rate (0.05: twice the spurious; docs/performance.md, issue 37)
        threshold = max(0.0, float(model.detector_score_threshold) - REDUCED_THRESHOLD_MARGIN)
    detections = list(model.detect(decoded.image_bgr, score_threshold=threshold, photo_size=decoded.photo_size))
    t2 = time.perf_counter()
    timings = {"decode": (t1 - t0) * 1000, "detect": (t2 - t1) * 1000, "landmarks": 0.0, "conceal": 0.0,
               "encode": 0.0}
    full = decoded.image_bgr if decoded.photo_size is None else None
    plates: list[Any] = []
    rect: Rect = (0, 0, lay.width, lay.height)
    region = full
    if detections:
        if full is None:
            rect = jpeg_blocks.align(lay, *_union(landmark_windows(model, detections)))
            region = coefs.decode(rect, lay.width, lay.height)
            # the landmark model reads only inside rect: a photo-sized canvas keeps its coordinates (np.zeros
            # maps pages lazily, so the rest costs nothing)
            canvas = np.zeros((lay.height, lay.width, 3), np.uint8)
            canvas[rect[1]:rect[3], rect[0]:rect[2]] = region
        else:
            canvas = full
        t3 = time.perf_counter()
        plates = list(model.refine(canvas, detections))
        t4 = time.perf_counter()
        timings["decode"] += (t3 - t2) * 1000
        timings["landmarks"] = (t4 - t3) * 1000
    t5 = time.perf_counter()
    if not plates:
        out = imaging.strip_jpeg_metadata(data)
        if out is None:
            return "the JPEG's marker structure is not the plain one kept losslessly"
        timings["encode"] = (time.perf_counter() - t5) * 1000
        return decoded, plates, timings, {"path": "lossless", "bytes": out}
    polygons = [np.asarray(p.polygon, dtype=np.float64) for p in plates]
    needed = conceal_rects(concealer, polygons, lay.width, lay.height)
    if not needed:   # every polygon degenerate: nothing changes
        out = imaging.strip_jpeg_metadata(data)
        if out is None:
            return "the JPEG's marker structure is not the plain one kept losslessly"
        return decoded, plates, timings, {"path": "lossless", "bytes": out}
    crect = jpeg_blocks.align(lay, *_union(needed))
    if not _contains(rect, crect):   # the concealment reaches past what was decoded: decode the union
        t6 = time.perf_counter()
        rect = jpeg_blocks.align(lay, *_union([rect, crect]))
        region = coefs.decode(rect, lay.width, lay.height)
        timings["decode"] += (time.perf_counter() - t6) * 1000
        t5 += time.perf_counter() - t6
    assert region is not None
    ox, oy = crect[0] - rect[0], crect[1] - rect[1]
    before = region[oy:oy + crect[3] - crect[1], ox:ox + crect[2] - crect[0]]
    after = concealer.apply(before, [p - (crect[0], crect[1]) for p in polygons])
    within = [(r[0] - crect[0], r[1] - crect[1], r[2] - crect[0], r[3] - crect[1]) for r in needed]
    blocks = jpeg_blocks.changed_blocks(lay, crect, before, after, within)
    t7 = time.perf_counter()
    coefs.set_blocks(blocks)
    out, optimised = coefs.write()
    if decoded.icc_profile:   # (validated by imaging.decode)
        out = _jpeg_with_icc(out, decoded.icc_profile)
    t8 = time.perf_counter()
    timings["conceal"] = (t7 - t5) * 1000
    timings["encode"] = (t8 - t7) * 1000
    encoding = {"path": "blocks", "bytes": out, "replaced_blocks": len(blocks), "region": list(crect),
                "huffman": "optimised" if optimised else "kept"}
    return decoded, plates, timings, encoding
