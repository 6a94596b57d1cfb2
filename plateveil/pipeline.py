"""The photo pipeline as plain functions over plain values: decode -> find plates -> conceal -> encode.

The Celery task, the ``plateveil conceal`` CLI, the evaluation and ``scripts/bench/bench.py`` all call these,
so a photo is processed the same way everywhere. Nothing here knows about S3, Redis, model bundles or
a deep-learning framework: the model is any :class:`PlateFinder` (``model_store.runtime.PlateModel``
is the real one; tests use small fakes).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from plateveil import imaging
from plateveil.conceal import DEFAULT_STYLE, Concealer, check_style, get_concealer

TIMING_KEYS = ("decode", "detect", "landmarks", "conceal", "encode", "total")


class FoundPlate(Protocol):
    """One plate a finder reports (``model_store.runtime.PlateFinding`` is one)."""

    @property
    def polygon(self) -> Sequence[tuple[float, float]]: ...   # 4 points, image pixels

    @property
    def score(self) -> float: ...

    def to_dict(self) -> dict[str, Any]: ...


class FinderTimings(Protocol):
    """How long the finder's two halves took, ms (``model_store.runtime.Timings`` is one)."""

    @property
    def detect(self) -> float: ...

    @property
    def landmarks(self) -> float: ...


class PlateFinder(Protocol):
    """Something that finds plates: what the pipeline needs from a model (``model_store.runtime.PlateModel``)."""

    @property
    def tag(self) -> str: ...   # name@version, written into every result

    def find_plates(self, image_bgr: np.ndarray) -> tuple[Sequence[FoundPlate], FinderTimings]: ...


@runtime_checkable
class TwoStageFinder(Protocol):
    """A finder whose halves can be called apart (``model_store.runtime.PlateModel`` is one): the detector on a
    reduced copy of the photo, the landmarks (and the concealment) on the photo itself only where the
    detector found something."""

    @property
    def tag(self) -> str: ...

    @property
    def detector_long_side(self) -> int: ...

    def find_plates(self, image_bgr: np.ndarray) -> tuple[Sequence[FoundPlate], FinderTimings]: ...

    def detect(self, image_bgr: np.ndarray, score_threshold: float | None = None,
               photo_size: tuple[int, int] | None = None) -> Sequence[Any]: ...

    def refine(self, image_bgr: np.ndarray, detections: Any) -> Sequence[FoundPlate]: ...


@dataclass(frozen=True)
class PipelineResult:
    """The concealed image and what was found. ``to_dict`` has everything but the bytes."""

    image_bytes: bytes = field(repr=False)
    content_type: str
    format: str
    width: int
    height: int
    plates: list[FoundPlate]
    timings_ms: dict[str, float]
    model: str
    style: str = DEFAULT_STYLE
    # how the output was written: {"path": "blocks" (only the plates' 8x8 blocks replaced in the original JPEG),
    # "lossless" (the original, metadata removed) or "reencoded" (decoded and encoded whole), "reason": why a JPEG
    # was re-encoded, ...}
    encoding: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "content_type": self.content_type,
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "plates": [p.to_dict() for p in self.plates],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "model": self.model,
            "style": self.style,
            "encoding": dict(self.encoding),
        }


# ----------------------------------------------------------------------------------------------
# stages


def decode_stage(data: bytes, max_pixels: int = imaging.DEFAULT_MAX_PIXELS,
                 budget_bytes: int = imaging.DEFAULT_DECODE_BUDGET_BYTES) -> imaging.DecodedImage:
    """Bytes -> upright BGR image (raises BadImageError)."""
    return imaging.decode(data, max_pixels=max_pixels, budget_bytes=budget_bytes)


def find_stage(model: PlateFinder, image_bgr: np.ndarray) -> tuple[Sequence[FoundPlate], FinderTimings]:
    """Image -> plate polygons in image pixels, with detect/landmarks timings in ms."""
    return model.find_plates(image_bgr)


def conceal_stage(image_bgr: np.ndarray, plates: Sequence[FoundPlate], concealer: Concealer) -> np.ndarray:
    """Image + plates -> a concealed copy."""
    polygons = [np.asarray(p.polygon, dtype=np.float64) for p in plates]
    return concealer.apply(image_bgr, polygons)


def encode_stage(image_bgr: np.ndarray, decoded: imaging.DecodedImage, jpeg_quality: int = 90) -> bytes:
    """Concealed image -> bytes in the input's format, with its ICC profile and no EXIF."""
    return imaging.encode(image_bgr, decoded.format, jpeg_quality=jpeg_quality, icc_profile=decoded.icc_profile)


# ----------------------------------------------------------------------------------------------


def conceal_bytes(
    data: bytes,
    model: PlateFinder,
    style: str = DEFAULT_STYLE,
    jpeg_quality: int = 90,
    max_pixels: int = imaging.DEFAULT_MAX_PIXELS,
    style_options: dict[str, Any] | None = None,
    decode_budget_bytes: int = imaging.DEFAULT_DECODE_BUDGET_BYTES,
    fast_paths: bool = True,
    reduced_decode: bool = False,
    plate_blocks: bool = True,
) -> PipelineResult:
    """Run the whole pipeline on one photo's bytes.

    With a :class:`TwoStageFinder` and ``fast_paths`` (the default), a JPEG in which no plate is found,
    stored upright (EXIF orientation 1), is returned as it came with its metadata removed
    (:func:`imaging.strip_jpeg_metadata`): no re-encode, no generation loss; what is found is exactly what
    the reference path finds. ``reduced_decode`` (off by default) also decodes a JPEG larger than the
    detector's input at reduced scale in the DCT for the detector, at full size only when the detector
    found something: cheaper for photos without plates, but the detector then sees slightly different
    pixels (1 plate of 411 lost on 300 validation photos, docs/performance.md). ``plate_blocks`` (the default,
    with ``fast_paths``): a baseline JPEG takes :func:`plateveil.pipeline_blocks.conceal_jpeg` (reduced-scale
    decode for the detector, full-resolution decode of the plates' regions only, output = the original stream
    with only the changed 8x8 blocks replaced); a JPEG that cannot (progressive, CMYK, EXIF-rotated...) takes the
    path above, the reason in ``encoding``. ``fast_paths=False``:
    decode, find, conceal, encode every photo at full size (the reference path).

    Raises UnknownStyleError (checked before anything is decoded) and BadImageError.
    """
    check_style(style)
    concealer = get_concealer(style, **(style_options or {}))
    if fast_paths and isinstance(model, TwoStageFinder):
        reason = "plate_blocks off" if not plate_blocks else None
        if imaging.sniff_image(data) != "jpeg":
            reason = None   # PNG, WebP...: decoded and encoded whole, as always
        elif plate_blocks:
            from plateveil.pipeline_blocks import conceal_jpeg

            t0 = time.perf_counter()
            done = conceal_jpeg(data, model, concealer, max_pixels, decode_budget_bytes)
            if not isinstance(done, str):
                decoded, plates, timings, encoding = done
                out = encoding.pop("bytes")
                timings["total"] = (time.perf_counter() - t0) * 1000
                return _result(out, decoded, plates, timings, model.tag, style, encoding)
            reason = done
        result = _conceal_two_stage(data, model, style, concealer, jpeg_quality, max_pixels, decode_budget_bytes,
                                    reduced_decode)
        if reason and result.encoding.get("path") == "reencoded":
            result.encoding["reason"] = reason
        return result
    t0 = time.perf_counter()
    decoded = decode_stage(data, max_pixels=max_pixels, budget_bytes=decode_budget_bytes)
    t1 = time.perf_counter()
    found, model_timings = find_stage(model, decoded.image_bgr)
    t2 = time.perf_counter()
    concealed = conceal_stage(decoded.image_bgr, found, concealer)
    t3 = time.perf_counter()
    out = encode_stage(concealed, decoded, jpeg_quality=jpeg_quality)
    t4 = time.perf_counter()
    timings = {
        "decode": (t1 - t0) * 1000,
        "detect": float(model_timings.detect),
        "landmarks": float(model_timings.landmarks),
        "conceal": (t3 - t2) * 1000,
        "encode": (t4 - t3) * 1000,
        "total": (t4 - t0) * 1000,
    }
    return _result(out, decoded, list(found), timings, model.tag, style,
                   {"path": "reencoded", "reason": "fast paths off" if not fast_paths else "the finder has one stage"})


def _conceal_two_stage(data: bytes, model: TwoStageFinder, style: str, concealer: Concealer, jpeg_quality: int,
                       max_pixels: int, budget_bytes: int, reduced_decode: bool) -> PipelineResult:
    t0 = time.perf_counter()
    reduce = imaging.reduction_for(data, model.detector_long_side) if reduced_decode else 1
    decoded = imaging.decode(data, max_pixels=max_pixels, budget_bytes=budget_bytes, reduce=reduce)
    t1 = time.perf_counter()
    copy = decoded.photo_size is not None  # a reduced copy for the detector (else the photo itself)
    detections = model.detect(decoded.image_bgr, photo_size=decoded.photo_size if copy else None)
    t2 = time.perf_counter()
    decode_ms, detect_ms, landmarks_ms = (t1 - t0) * 1000, (t2 - t1) * 1000, 0.0
    plates: list[FoundPlate] = []
    if detections:
        if copy:  # the landmarks and the concealment work on the photo itself
            decoded = imaging.decode(data, max_pixels=max_pixels, budget_bytes=budget_bytes)
        t3 = time.perf_counter()
        plates = list(model.refine(decoded.image_bgr, detections))
        decode_ms += (t3 - t2) * 1000
        landmarks_ms = (time.perf_counter() - t3) * 1000
    t4 = time.perf_counter()
    # (a JPEG decoded smaller to fit the decode budget is written at that size, as the reference path does)
    keep = not plates and decoded.format == "jpeg" and (decoded.reduced == 1 or decoded.photo_size is not None)
    out = imaging.strip_jpeg_metadata(data) if keep else None
    encoding: dict[str, Any] = {"path": "lossless" if out is not None else "reencoded"}
    conceal_ms, encode_ms = 0.0, (time.perf_counter() - t4) * 1000   # the lossless strip counts as the encode
    if out is None:
        if decoded.photo_size is not None:  # nothing found, but the photo must be turned upright or re-encoded
            t5 = time.perf_counter()
            decoded = imaging.decode(data, max_pixels=max_pixels, budget_bytes=budget_bytes)
            decode_ms += (time.perf_counter() - t5) * 1000
        t6 = time.perf_counter()
        concealed = conceal_stage(decoded.image_bgr, plates, concealer)
        t7 = time.perf_counter()
        out = encode_stage(concealed, decoded, jpeg_quality=jpeg_quality)
        conceal_ms, encode_ms = (t7 - t6) * 1000, encode_ms + (time.perf_counter() - t7) * 1000
    timings = {
        "decode": decode_ms,
        "detect": detect_ms,
        "landmarks": landmarks_ms,
        "conceal": conceal_ms,
        "encode": encode_ms,
        "total": (time.perf_counter() - t0) * 1000,
    }
    return _result(out, decoded, plates, timings, model.tag, style, encoding)


def _result(out: bytes, decoded: imaging.DecodedImage, plates: list[FoundPlate], timings: dict[str, float],
            tag: str, style: str, encoding: dict[str, Any] | None = None) -> PipelineResult:
    fmt = imaging.output_format(decoded.format)
    return PipelineResult(
        image_bytes=out,
        content_type=imaging.CONTENT_TYPES[fmt],
        format=fmt,
        width=decoded.width,
        height=decoded.height,
        plates=plates,
        timings_ms=timings,
        model=tag,
        style=style,
        encoding=dict(encoding or {}),
    )
