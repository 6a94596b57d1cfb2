"""Decode uploaded photo bytes to an upright 8-bit BGR array, and encode the result once.

``decode`` sniffs the format from magic bytes, refuses empty, truncated, unknown, animated and
oversized (decompression-bomb) data with :class:`~plateveil.errors.BadImageError`, applies the EXIF
orientation (1-8) to the pixels, and keeps only the ICC colour profile (when it is a valid profile
of at most :data:`MAX_ICC_BYTES`; others are dropped): EXIF and GPS metadata are dropped.

Decode memory budget: before any pixel is decoded, the memory the decode needs is computed from
the header (width x height x channels x bytes per sample, alpha and 16-bit included, plus the 8-bit
BGR copy when a conversion is needed). Over ``budget_bytes`` a JPEG is decoded at 1/2, 1/4 or 1/8
scale by libjpeg (``cv2.IMREAD_REDUCED_COLOR_*``; the result says ``reduced``), anything else is
refused with the numbers. Conversions (16-bit, alpha over white) run in bands of rows, so no
full-size float copy is ever made. ``encode`` writes the same format back (JPEG, PNG, WebP; other lossless inputs as PNG) and
re-attaches the ICC profile by splicing it into the encoded stream, so pixels are encoded once.

OpenCV does the pixel work (fast); Pillow only opens the header to read size, EXIF orientation
and ICC profile (it does not decode pixels). ``sniff_image`` needs nothing but the bytes.

One module per job; every public name is importable from here:

* ``formats.py``: magic-byte sniffing, animation refusal, output format, content types/extensions
  (standard library only: the upload service uses these without numpy, OpenCV or Pillow);
* ``header.py``: the header read with Pillow without decoding pixels (size, layout, orientation, ICC);
* ``decode.py``: ``decode`` within the memory budget, ``reduction_for``, ``DecodedImage``;
* ``jpeg_bytes.py``: JPEG byte surgery (``strip_jpeg_metadata``: metadata out, image data untouched);
* ``icc.py``: which ICC profiles are kept, and splicing one into an encoded JPEG/PNG/WebP;
* ``encode.py``: ``encode`` once, in the format the photo came in;
* ``jpeg_blocks.py`` (issue 37; imported on its own, not from here: it needs numpy and the optional C extension
  ``plateveil._native``): a baseline JPEG's layout, a full-resolution decode of one region, and the stream
  rewritten with only some 8x8 blocks replaced.
"""

from __future__ import annotations

from plateveil.errors import BadImageError
from plateveil.imaging.decode import (
    DEFAULT_DECODE_BUDGET_BYTES,
    DEFAULT_MAX_PIXELS,
    DecodedImage,
    _to_bgr8,
    apply_orientation,
    decode,
    describe,
    reduction_for,
)
from plateveil.imaging.encode import encode
from plateveil.imaging.formats import (
    CONTENT_TYPES,
    DECODABLE,
    ENCODABLE,
    EXTENSIONS,
    animation,
    output_format,
    sniff_image,
)
from plateveil.imaging.header import Header, _read_header
from plateveil.imaging.icc import MAX_ICC_BYTES, _valid_icc
from plateveil.imaging.jpeg_bytes import strip_jpeg_metadata

__all__ = [
    "CONTENT_TYPES", "DECODABLE", "DEFAULT_DECODE_BUDGET_BYTES", "DEFAULT_MAX_PIXELS", "ENCODABLE", "EXTENSIONS",
    "MAX_ICC_BYTES", "BadImageError", "DecodedImage", "Header", "_read_header", "_to_bgr8", "_valid_icc",
    "animation", "apply_orientation", "decode", "describe", "encode", "output_format", "reduction_for",
    "sniff_image", "strip_jpeg_metadata",
]
