"""Decode uploaded photo bytes to an upright 8-bit BGR array, and encode the result once.

``decode`` sniffs the format from magic bytes, refuses empty, truncated, unknown and oversized
(decompression-bomb) data with :class:`~plateveil.errors.BadImageError`, applies the EXIF
orientation (1-8) to the pixels, and keeps only the ICC colour profile: EXIF and GPS metadata are
dropped. ``encode`` writes the same format back (JPEG, PNG, WebP; other lossless inputs as PNG) and
re-attaches the ICC profile by splicing it into the encoded stream, so pixels are encoded once.

OpenCV does the pixel work (fast); Pillow only opens the header to read size, EXIF orientation
and ICC profile (it does not decode pixels). ``sniff_image`` needs nothing but the bytes.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plateveil.errors import BadImageError

if TYPE_CHECKING:  # numpy, OpenCV and Pillow are imported where pixels are handled, so that the
    import numpy as np  # upload service can use sniff_image / output_format without them

DEFAULT_MAX_PIXELS = 50_000_000

# formats we decode; anything else sniffed (gif, heic...) is refused with a clear reason
DECODABLE = ("jpeg", "png", "webp", "bmp", "tiff")
# formats we write; every other decodable format is written as PNG (lossless)
ENCODABLE = ("jpeg", "png", "webp")
CONTENT_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "gif": "image/gif",
}
EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "bmp": ".bmp", "tiff": ".tif", "gif": ".gif"}

_EXIF_ORIENTATION = 0x0112


def sniff_image(data: bytes) -> str | None:
    """Image format from magic bytes (``"jpeg"``, ``"png"``, ``"webp"``, ``"gif"``, ``"bmp"``,
    ``"tiff"``, ``"heic"``) or ``None``. Looks at the first 16 bytes only; imports nothing."""
    head = bytes(data[:16])
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:2] == b"BM" and len(head) >= 14:
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"avif"):
        return "avif" if head[8:12] == b"avif" else "heic"
    return None


def animation(data: bytes, fmt: str | None = None) -> str | None:
    """Why ``data`` is refused as animated (APNG with more than one frame, animated WebP), else
    None. Reads chunk headers only; imports nothing."""
    fmt = fmt or sniff_image(data)
    if fmt == "png":
        i, n = 8, len(data)
        while i + 8 <= n:
            length = int.from_bytes(data[i:i + 4], "big")
            kind = bytes(data[i + 4:i + 8])
            if kind == b"IDAT":
                return None
            if kind == b"acTL" and i + 12 <= n and int.from_bytes(data[i + 8:i + 12], "big") > 1:
                return "animated PNG (APNG) is not supported: send a single still photo"
            i += 12 + length
        return None
    if fmt == "webp":
        if bytes(data[12:16]) == b"VP8X" and len(data) > 20 and data[20] & 0x02:
            return "animated WebP is not supported: send a single still photo"
        return None
    if fmt == "gif":
        return "GIF is not supported (animated or not): send a JPEG, PNG or WebP photo"
    return None


def output_format(input_format: str) -> str:
    """The format ``encode`` writes for an input of ``input_format``."""
    return input_format if input_format in ENCODABLE else "png"


@dataclass(frozen=True)
class DecodedImage:
    """An upright 8-bit BGR image, the format it came in and its ICC profile (if any)."""

    image_bgr: np.ndarray
    format: str
    icc_profile: bytes | None = None
    orientation: int = 1  # the EXIF orientation that was applied (1 = none)

    @property
    def height(self) -> int:
        return int(self.image_bgr.shape[0])

    @property
    def width(self) -> int:
        return int(self.image_bgr.shape[1])


# ----------------------------------------------------------------------------------------------
# decoding


def decode(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode ``data`` to an upright BGR uint8 array; see the module docstring.

    Raises :class:`BadImageError` for empty, unknown, truncated or undecodable data and for images
    over ``max_pixels`` (checked from the header, before any pixel is decoded).
    """
    if not data:
        raise BadImageError("empty image data")
    fmt = sniff_image(data)
    if fmt is None:
        raise BadImageError("not an image: unrecognised file signature")
    if fmt not in DECODABLE:
        raise BadImageError(f"unsupported image format {fmt!r}; supported: {', '.join(DECODABLE)}")

    width, height, orientation, icc = _read_header(data, fmt)
    if width <= 0 or height <= 0:
        raise BadImageError(f"invalid image size {width}x{height}")
    if width * height > max_pixels:
        raise BadImageError(
            f"image too large: {width}x{height} = {width * height / 1e6:.1f} MP exceeds the "
            f"{max_pixels / 1e6:.1f} MP limit")
    if fmt == "jpeg" and not _jpeg_complete(data):
        raise BadImageError("truncated JPEG: no end-of-image marker after the scan data")

    import cv2
    import numpy as np

    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        raw = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)  # UNCHANGED also ignores EXIF orientation
    except cv2.error as exc:
        raise BadImageError(f"cannot decode {fmt}: {exc}") from None
    if raw is None or raw.size == 0:
        raise BadImageError(f"cannot decode {fmt}: corrupt or truncated data")
    image = _to_bgr8(raw)
    if image.shape[0] != height or image.shape[1] != width:
        # header and pixel data disagree (rare; multi-page TIFF): trust the pixels
        height, width = image.shape[:2]
    image = np.ascontiguousarray(apply_orientation(image, orientation))
    return DecodedImage(image, fmt, icc, orientation)


def _read_header(data: bytes, fmt: str) -> tuple[int, int, int, bytes | None]:
    """(width, height, EXIF orientation, ICC profile) from the header, without decoding pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # our own max_pixels check is the one that counts
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            width, height = im.size
            info = dict(im.info)
            orientation = 1
            if fmt == "tiff":
                orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1))
            elif info.get("exif"):
                exif = Image.Exif()
                exif.load(info["exif"])
                orientation = int(exif.get(_EXIF_ORIENTATION, 1))
    except Image.DecompressionBombError as exc:
        raise BadImageError(f"image too large: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error, TypeError) as exc:
        raise BadImageError(f"cannot read {fmt} header: {exc}") from None
    if orientation not in range(1, 9):
        orientation = 1
    icc = info.get("icc_profile") or None
    return int(width), int(height), orientation, icc


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
            return data.find(b"\xff\xd9", i + 2) != -1
        if marker == 0xD9:
            return False  # EOI before any scan
        length = (data[i + 2] << 8) | data[i + 3]
        i += 2 + length
    return False


def _to_bgr8(raw: np.ndarray) -> np.ndarray:
    """Grayscale / BGRA / 16-bit / float decodes -> 8-bit BGR (alpha composited over white)."""
    import cv2
    import numpy as np

    img = raw
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img.astype(np.float32) * (255.0 if img.dtype.kind == "f" else 1.0), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    channels = img.shape[2]
    if channels == 1:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if channels == 2:  # gray + alpha
        gray = img[:, :, 0]
        img = np.dstack([gray, gray, gray, img[:, :, 1]])
        channels = 4
    if channels == 4:
        alpha = img[:, :, 3:4]
        if alpha.min() == 255:
            return np.ascontiguousarray(img[:, :, :3])
        a = alpha.astype(np.float32) / 255.0
        out = img[:, :, :3].astype(np.float32) * a + 255.0 * (1.0 - a)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return img[:, :, :3]


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


# ----------------------------------------------------------------------------------------------
# encoding


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


def _jpeg_with_icc(jpeg: bytes, icc: bytes) -> bytes:
    """Insert APP2 ICC_PROFILE segments after SOI (and the JFIF APP0 segment, when present)."""
    chunk = 65519  # 65535 - 2 (length) - 14 (signature + sequence numbers)
    parts = [icc[i:i + chunk] for i in range(0, len(icc), chunk)]
    if len(parts) > 255:
        return jpeg  # not representable; drop rather than corrupt
    segments = b"".join(
        b"\xff\xe2" + struct.pack(">H", len(p) + 16) + b"ICC_PROFILE\x00" + bytes([k + 1, len(parts)]) + p
        for k, p in enumerate(parts))
    pos = 2
    if jpeg[2:4] == b"\xff\xe0":
        pos = 4 + struct.unpack(">H", jpeg[4:6])[0]
    return jpeg[:pos] + segments + jpeg[pos:]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_with_icc(png: bytes, icc: bytes) -> bytes:
    """Insert an iCCP chunk right after IHDR (8-byte signature + 25-byte IHDR chunk)."""
    iccp = _png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(icc))
    return png[:33] + iccp + png[33:]


def _webp_with_icc(webp: bytes, icc: bytes, width: int, height: int) -> bytes:
    """Turn a simple (VP8/VP8L) WebP into an extended one: VP8X header + ICCP chunk + image."""
    body = webp[12:]
    if body[:4] == b"VP8X":
        return webp  # already extended (not produced by our encoder); leave as is

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return kind + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) % 2 else b"")

    vp8x = bytes([0x20, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    payload = b"WEBP" + chunk(b"VP8X", vp8x) + chunk(b"ICCP", icc) + body
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


def describe(decoded: DecodedImage) -> dict[str, Any]:
    """Small summary for logs and reports."""
    return {"format": decoded.format, "width": decoded.width, "height": decoded.height,
            "orientation": decoded.orientation, "icc": decoded.icc_profile is not None}
