"""Decoding: photo bytes -> an upright 8-bit BGR array within a memory budget (see :mod:`plateveil.imaging`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plateveil.errors import BadImageError
from plateveil.imaging.formats import DECODABLE, animation, sniff_image
from plateveil.imaging.header import Header, _read_header
from plateveil.imaging.icc import _valid_icc

if TYPE_CHECKING:  # numpy is imported where pixels are handled (the upload service imports this package without it)
    import numpy as np

logger = logging.getLogger("plateveil.imaging")


DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_DECODE_BUDGET_BYTES = 256 * 2**20
"""Largest decode (decoded samples + the 8-bit BGR result) a worker does at full size: a 50 MP
RGB photo needs 150 MB; a 7070x7070 RGBA PNG needs 350 MB (its 16-bit version 550 MB) and is refused."""


@dataclass(frozen=True)
class DecodedImage:
    """An upright 8-bit BGR image, the format it came in and its ICC profile (if any)."""

    image_bgr: np.ndarray
    format: str
    icc_profile: bytes | None = None
    orientation: int = 1  # the EXIF orientation that was applied (1 = none)
    reduced: int = 1  # decoded at 1/reduced of the stored size (JPEG over the decode budget, or a detector copy)
    # set when image_bgr is a reduced copy made for the detector (``decode(reduce=)``): the upright photo's
    # (width, height), which ``width``/``height`` then give
    photo_size: tuple[int, int] | None = None

    @property
    def height(self) -> int:
        return int(self.photo_size[1]) if self.photo_size else int(self.image_bgr.shape[0])

    @property
    def width(self) -> int:
        return int(self.photo_size[0]) if self.photo_size else int(self.image_bgr.shape[1])


def reduction_for(data: bytes, min_long_side: int) -> int:
    """The largest JPEG DCT scale-down (8, 4, 2, else 1) that keeps the long side >= ``min_long_side``.

    1 for anything that is not a JPEG or whose header cannot be read (``decode`` then says why).
    """
    if sniff_image(data) != "jpeg" or min_long_side <= 0:
        return 1
    try:
        header = _read_header(data, "jpeg")
    except BadImageError:
        return 1
    long_side = max(header.width, header.height)
    for factor in (8, 4, 2):
        if -(-long_side // factor) >= min_long_side:
            return factor
    return 1


def decode(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
           budget_bytes: int = DEFAULT_DECODE_BUDGET_BYTES, reduce: int = 1,
           jpeg_pixels: Callable[[], np.ndarray] | None = None) -> DecodedImage:
    """Decode ``data`` to an upright BGR uint8 array; see the module docstring.

    ``reduce`` (2, 4 or 8; a JPEG within the decode budget only, ignored otherwise): a copy for the
    detector, decoded at that fraction of the size in the DCT (libjpeg-turbo scaled decoding: several times
    faster than a full decode, a proper low-pass like INTER_AREA); ``width``/``height`` still give the
    photo's size (``photo_size``).

    ``jpeg_pixels`` (a JPEG within the decode budget; ``reduce`` is then not used): gives the stored JPEG's pixels
    as 8-bit BGR in place of OpenCV's decode, after the same checks: the photo, or a smaller copy of it for the
    detector (``photo_size`` is then set), e.g. decoded at n/8 scale from coefficients already read
    (``jpeg_blocks.Coefficients.decode``) and resized.

    Raises :class:`BadImageError` for empty, unknown, animated, truncated or undecodable data, for
    images over ``max_pixels`` and for non-JPEG images whose decode needs more than
    ``budget_bytes`` (both checked from the header, before any pixel is decoded).
    """
    if not data:
        raise BadImageError("empty image data")
    fmt = sniff_image(data)
    if fmt is None:
        raise BadImageError("not an image: unrecognised file signature")
    if fmt not in DECODABLE:
        raise BadImageError(f"unsupported image format {fmt!r}; supported: {', '.join(DECODABLE)}")
    moving = animation(data, fmt)
    if moving:
        raise BadImageError(moving)

    header = _read_header(data, fmt)
    width, height = header.width, header.height
    if width <= 0 or height <= 0:
        raise BadImageError(f"invalid image size {width}x{height}")
    if width * height > max_pixels:
        raise BadImageError(
            f"image too large: {width}x{height} = {width * height / 1e6:.1f} MP exceeds the "
            f"{max_pixels / 1e6:.1f} MP limit")
    budget_reduce = _reduction(header, fmt, budget_bytes)
    detector_copy = fmt == "jpeg" and budget_reduce == 1 and reduce in _REDUCED_FLAGS
    reduce = reduce if detector_copy else budget_reduce
    if fmt == "jpeg" and not _jpeg_complete(data):
        raise BadImageError("truncated JPEG: no end-of-image marker after the scan data")

    import cv2
    import numpy as np

    if jpeg_pixels is not None and fmt == "jpeg" and budget_reduce == 1:
        raw = jpeg_pixels()
        detector_copy = raw.shape[:2] != (height, width)
        reduce = max(1, round(max(width, height) / max(raw.shape[:2])))
    else:
        buf = np.frombuffer(data, dtype=np.uint8)
        # UNCHANGED (and IGNORE_ORIENTATION) leave EXIF orientation to us
        flags = cv2.IMREAD_UNCHANGED if reduce == 1 else (_REDUCED_FLAGS[reduce] | cv2.IMREAD_IGNORE_ORIENTATION)
        try:
            raw = cv2.imdecode(buf, flags)
        except cv2.error:
            raise BadImageError(f"cannot decode {fmt}: corrupt or unsupported data") from None
    if raw is None or raw.size == 0:
        raise BadImageError(f"cannot decode {fmt}: corrupt or truncated data")
    image = _to_bgr8(raw)
    del raw
    image = np.ascontiguousarray(apply_orientation(image, header.orientation))
    photo_size = None
    if detector_copy:
        photo_size = (height, width) if header.orientation in (5, 6, 7, 8) else (width, height)
    return DecodedImage(image, fmt, _valid_icc(header.icc), header.orientation, reduce, photo_size)


_REDUCED_FLAGS = {2: 17, 4: 33, 8: 65}  # cv2.IMREAD_REDUCED_COLOR_2/4/8 (libjpeg scales while decoding)


def _reduction(header: Header, fmt: str, budget_bytes: int) -> int:
    """1 when the decode fits the budget; else the JPEG scale that fits; else BadImageError."""
    need = header.decode_bytes()
    if need <= budget_bytes:
        return 1
    if fmt == "jpeg":
        for reduce in (2, 4, 8):
            if header.decode_bytes(reduce) <= budget_bytes:
                logger.info("%dx%d JPEG needs %.0f MiB to decode, over the %.0f MiB budget: decoding at 1/%d",
                            header.width, header.height, need / 2**20, budget_bytes / 2**20, reduce)
                return reduce
    depth = f"{8 * header.bytes_per_sample}-bit"
    raise BadImageError(
        f"image needs {need / 2**20:.0f} MiB to decode ({header.width}x{header.height}, {header.channels} "
        f"channels, {depth}), over the {budget_bytes / 2**20:.0f} MiB decode budget; send a smaller or "
        "8-bit photo without alpha")


def _jpeg_complete(data: bytes) -> bool:
    """True when an end-of-image marker follows the first start-of-scan marker.

    (libjpeg decodes a truncated file with a warning and grey fill, so this is checked here.)
    Walks the marker segments so that an EXIF thumbnail's EOI does not count.
    """
    n, i = len(data), 2
    while i + 4 <= n:
        if data[i] != 0xFF:
            return False
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if marker == 0xDA:  # start of scan: entropy data follows, EOI must come later
            return data.rfind(b"\xff\xd9", i + 2) != -1   # from the end: where the EOI of a whole file is
        if marker == 0xD9:
            return False  # EOI before any scan
        length = (data[i + 2] << 8) | data[i + 3]
        i += 2 + length
    return False


def _to_bgr8(raw: np.ndarray, band_samples: int = 1 << 22) -> np.ndarray:
    """Grayscale / BGRA / 16-bit / float decodes -> 8-bit BGR (alpha composited over white).

    8-bit BGR comes back as it is; everything else is converted in bands of rows of about
    ``band_samples`` samples into one preallocated result, so the temporaries stay small."""
    import numpy as np

    img = raw if raw.ndim == 3 else raw[:, :, None]
    h, w, c = img.shape
    if img.dtype == np.uint8 and c == 3:
        return img
    out = np.empty((h, w, 3), np.uint8)
    rows = max(1, band_samples // max(1, w * c))
    for y in range(0, h, rows):
        out[y:y + rows] = _band_to_bgr8(img[y:y + rows])
    return out


def _band_to_bgr8(band: np.ndarray) -> np.ndarray:
    import numpy as np

    if band.dtype == np.uint16:
        band = (band >> 8).astype(np.uint8)
    elif band.dtype != np.uint8:
        scale = 255.0 if band.dtype.kind == "f" else 1.0
        band = np.clip(band.astype(np.float32) * scale, 0, 255).astype(np.uint8)
    c = band.shape[2]
    if c == 1:
        return np.repeat(band, 3, axis=2)
    if c == 2:  # gray + alpha
        band = np.concatenate([band[:, :, :1]] * 3 + [band[:, :, 1:2]], axis=2)
    if band.shape[2] >= 4:
        alpha = band[:, :, 3:4]
        if alpha.min() == 255:
            return band[:, :, :3]
        a = alpha.astype(np.uint16)
        mixed = (band[:, :, :3].astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
        return mixed.astype(np.uint8)
    return band[:, :, :3]


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip pixels stored with EXIF ``orientation`` (1-8) so they display upright."""
    if orientation == 2:
        return image[:, ::-1]
    if orientation == 3:
        return image[::-1, ::-1]
    if orientation == 4:
        return image[::-1]
    if orientation == 5:
        return image.swapaxes(0, 1)
    if orientation == 6:
        return image.swapaxes(0, 1)[:, ::-1]
    if orientation == 7:
        return image.swapaxes(0, 1)[::-1, ::-1]
    if orientation == 8:
        return image.swapaxes(0, 1)[::-1]
    return image


def describe(decoded: DecodedImage) -> dict[str, Any]:
    """Small summary for logs and reports."""
    return {"format": decoded.format, "width": decoded.width, "height": decoded.height,
            "orientation": decoded.orientation, "icc": decoded.icc_profile is not None, "reduced": decoded.reduced}
