"""The photo pipeline as plain functions over plain values: decode -> find plates -> conceal -> encode.

The Celery task, the ``plateveil conceal`` CLI, the evaluation and ``scripts/bench.py`` all call these,
so a photo is processed the same way everywhere. Nothing here knows about S3, Redis, model bundles or
a deep-learning framework: the model is any :class:`PlateFinder` (``model_store.runtime.PlateModel``
is the real one; tests use small fakes).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

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
) -> PipelineResult:
    """Run the whole pipeline on one photo's bytes.

    Raises UnknownStyleError (checked before anything is decoded) and BadImageError.
    """
    check_style(style)
    concealer = get_concealer(style, **(style_options or {}))
    t0 = time.perf_counter()
    decoded = decode_stage(data, max_pixels=max_pixels, budget_bytes=decode_budget_bytes)
    t1 = time.perf_counter()
    plates, model_timings = find_stage(model, decoded.image_bgr)
    t2 = time.perf_counter()
    concealed = conceal_stage(decoded.image_bgr, plates, concealer)
    t3 = time.perf_counter()
    out = encode_stage(concealed, decoded, jpeg_quality=jpeg_quality)
    t4 = time.perf_counter()
    fmt = imaging.output_format(decoded.format)
    timings = {
        "decode": (t1 - t0) * 1000,
        "detect": float(model_timings.detect),
        "landmarks": float(model_timings.landmarks),
        "conceal": (t3 - t2) * 1000,
        "encode": (t4 - t3) * 1000,
        "total": (t4 - t0) * 1000,
    }
    return PipelineResult(
        image_bytes=out,
        content_type=imaging.CONTENT_TYPES[fmt],
        format=fmt,
        width=decoded.width,
        height=decoded.height,
        plates=list(plates),
        timings_ms=timings,
        model=model.tag,
        style=style,
    )
