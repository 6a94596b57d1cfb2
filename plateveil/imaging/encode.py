"""Encoding: the concealed image written once, in the format it came in (other lossless inputs as PNG),
its ICC profile re-attached.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plateveil.errors import BadImageError
from plateveil.imaging.formats import output_format
from plateveil.imaging.icc import _jpeg_with_icc, _png_with_icc, _webp_with_icc

if TYPE_CHECKING:  # numpy is imported where pixels are handled (the upload service imports this package without it)
    import numpy as np



def encode(image_bgr: np.ndarray, format: str, jpeg_quality: int = 90, icc_profile: bytes | None = None) -> bytes:
    """Encode once to ``output_format(format)``; the ICC profile is embedded, no EXIF is written."""
    import cv2

    fmt = output_format(format)
    quality = int(min(max(jpeg_quality, 1), 100))
    if fmt == "jpeg":
        ok, buf = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    elif fmt == "webp":
        ok, buf = cv2.imencode(".webp", image_bgr, [cv2.IMWRITE_WEBP_QUALITY, quality])
    else:
        ok, buf = cv2.imencode(".png", image_bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise BadImageError(f"cannot encode image of shape {image_bgr.shape} as {fmt}")
    out = buf.tobytes()
    if icc_profile:
        if fmt == "jpeg":
            out = _jpeg_with_icc(out, icc_profile)
        elif fmt == "png":
            out = _png_with_icc(out, icc_profile)
        else:
            out = _webp_with_icc(out, icc_profile, image_bgr.shape[1], image_bgr.shape[0])
    return out
