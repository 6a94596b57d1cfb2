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
"""

from __future__ import annotations

import io
import logging
import re
import struct
import warnings
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plateveil.errors import BadImageError

if TYPE_CHECKING:  # numpy, OpenCV and Pillow are imported where pixels are handled, so that the
    import numpy as np  # upload service can use sniff_image / output_format without them

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_DECODE_BUDGET_BYTES = 256 * 2**20
"""Largest decode (decoded samples + the 8-bit BGR result) a worker does at full size: a 50 MP
RGB photo needs 150 MB; a 7070x7070 RGBA PNG needs 350 MB (its 16-bit version 550 MB) and is refused."""
MAX_ICC_BYTES = 128 * 1024
"""Largest ICC profile kept (sRGB is 3 KB, Display P3 0.5 KB); larger ones are dropped."""

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


# ----------------------------------------------------------------------------------------------
# decoding


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
           budget_bytes: int = DEFAULT_DECODE_BUDGET_BYTES, reduce: int = 1) -> DecodedImage:
    """Decode ``data`` to an upright BGR uint8 array; see the module docstring.

    ``reduce`` (2, 4 or 8; a JPEG within the decode budget only, ignored otherwise): a copy for the
    detector, decoded at that fraction of the size in the DCT (libjpeg-turbo scaled decoding: several times
    faster than a full decode, a proper low-pass like INTER_AREA); ``width``/``height`` still give the
    photo's size (``photo_size``).

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


@dataclass(frozen=True)
class Header:
    """What the header says, read without decoding pixels."""

    width: int
    height: int
    channels: int  # as OpenCV decodes them (IMREAD_UNCHANGED), alpha included
    bytes_per_sample: int  # 1, 2 (16-bit) or 4 (32-bit int / float)
    orientation: int = 1
    icc: bytes | None = None

    def decode_bytes(self, reduce: int = 1) -> int:
        """Memory of the decode: the decoded samples, plus the 8-bit BGR result when it is a copy."""
        w, h = -(-self.width // reduce), -(-self.height // reduce)
        if reduce > 1:  # IMREAD_REDUCED_COLOR_* gives 8-bit BGR directly
            return w * h * 3
        samples = w * h * self.channels * self.bytes_per_sample
        converted = 0 if (self.channels == 3 and self.bytes_per_sample == 1) else w * h * 3
        return samples + converted


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


# PIL mode -> (channels as OpenCV decodes them, bytes per sample); unknown modes count as the worst
_MODES = {"1": (1, 1), "L": (1, 1), "P": (3, 1), "PA": (4, 1), "LA": (4, 1), "La": (4, 1), "RGB": (3, 1),
          "RGBA": (4, 1), "RGBa": (4, 1), "RGBX": (4, 1), "CMYK": (4, 1), "YCbCr": (3, 1), "LAB": (3, 1),
          "HSV": (3, 1), "I;16": (1, 2), "I;16L": (1, 2), "I;16B": (1, 2), "I;16N": (1, 2), "I": (1, 4),
          "F": (1, 4)}
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 4, 6: 4}  # colour type -> channels (gray+alpha decodes as BGRA)


def _png_layout(data: bytes) -> tuple[int, int]:
    """(channels, bytes per sample) from a PNG's IHDR (PIL reports 16-bit colour as 8-bit modes)."""
    bit_depth, color_type = data[24], data[25]
    channels = _PNG_CHANNELS.get(color_type, 4)
    if color_type == 3 and b"tRNS" in data[33:data.find(b"IDAT")]:
        channels = 4  # palette with transparency decodes as BGRA
    return channels, 2 if bit_depth == 16 else 1


def _layout(im: Any, data: bytes, fmt: str) -> tuple[int, int]:
    if fmt == "png" and len(data) > 26:
        return _png_layout(data)
    channels, size = _MODES.get(im.mode, (4, 4))
    if im.mode == "P" and "transparency" in im.info:
        channels = 4
    if fmt == "tiff":
        bits = im.tag_v2.get(258)  # BitsPerSample
        bits = max(bits) if isinstance(bits, tuple | list) and bits else bits
        if isinstance(bits, int) and bits > 8:
            size = max(size, (bits + 7) // 8)
        samples = im.tag_v2.get(277)  # SamplesPerPixel
        if isinstance(samples, int) and samples > channels:
            channels = samples
    return channels, size


_REPR = re.compile(r"<[^<>]*? at 0x[0-9a-fA-F]+>")


def _read_header(data: bytes, fmt: str) -> Header:
    """Size, decoded layout, EXIF orientation and ICC profile from the header, without decoding pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # our own max_pixels check is the one that counts
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            width, height = im.size
            info = dict(im.info)
            channels, size = _layout(im, data, fmt)
            orientation = 1
            if fmt == "tiff":
                orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1))
            elif info.get("exif"):
                exif = Image.Exif()
                exif.load(info["exif"])
                orientation = int(exif.get(_EXIF_ORIENTATION, 1))
    except Image.DecompressionBombError:
        raise BadImageError("image too large (decompression bomb)") from None
    except UnidentifiedImageError:
        raise BadImageError(f"cannot read {fmt} header: not a valid {fmt} file") from None
    except (OSError, SyntaxError, ValueError, struct.error, TypeError, IndexError, KeyError) as exc:
        raise BadImageError(f"cannot read {fmt} header: {_REPR.sub('data', str(exc))[:200]}") from None
    if orientation not in range(1, 9):
        orientation = 1
    icc = info.get("icc_profile") or None
    return Header(int(width), int(height), channels, size, orientation, icc)


def _valid_icc(icc: bytes | None, max_bytes: int = MAX_ICC_BYTES) -> bytes | None:
    """``icc`` when it is a well-formed ICC profile of at most ``max_bytes``, else None (dropped):
    the header's size field matches, the 'acsp' signature is there, every tag lies inside the
    profile, and littleCMS (Pillow's ImageCms) can open it."""
    if not icc:
        return None
    reason = None
    if not isinstance(icc, bytes | bytearray) or len(icc) > max_bytes:
        reason = f"larger than {max_bytes} bytes"
    elif len(icc) < 132 or int.from_bytes(icc[0:4], "big") != len(icc) or icc[36:40] != b"acsp":
        reason = "not an ICC profile (size field or 'acsp' signature wrong)"
    else:
        count = int.from_bytes(icc[128:132], "big")
        if 132 + 12 * count > len(icc):
            reason = "tag table runs past the end"
        else:
            for n in range(count):
                offset = int.from_bytes(icc[136 + 12 * n:140 + 12 * n], "big")
                size = int.from_bytes(icc[140 + 12 * n:144 + 12 * n], "big")
                if offset + size > len(icc):
                    reason = "a tag runs past the end"
                    break
    if reason is None:
        try:
            from PIL import ImageCms

            ImageCms.ImageCmsProfile(io.BytesIO(bytes(icc)))
        except Exception:  # littleCMS refuses it (PyCMSError, OSError...)
            reason = "littleCMS cannot read it"
    if reason is not None:
        logger.info("ICC profile of %d bytes dropped: %s", len(icc), reason)
        return None
    return bytes(icc)


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


# ----------------------------------------------------------------------------------------------
# lossless metadata removal (a JPEG with nothing to conceal keeps its own compressed data)

_SOF_HUFFMAN = (0xC0, 0xC1, 0xC2)  # baseline, extended, progressive (Huffman); others are re-encoded
_KEEP_APP = ((0xE0, b"JFIF\x00"), (0xE2, b"ICC_PROFILE\x00"), (0xEE, b"Adobe"))


def strip_jpeg_metadata(data: bytes) -> bytes | None:
    """The same JPEG without its metadata, the compressed image data untouched (no generation loss).

    Keeps the JFIF header (APP0), the ICC profile (APP2 ``ICC_PROFILE``) and the Adobe colour-transform
    segment (APP14), the tables, frame and scans; drops EXIF/XMP (APP1), every other APPn (IPTC,
    MPF...), comments and anything after the first image's end (appended previews). Returns None when
    the photo is not one this can keep as it is - an EXIF orientation other than 1 (the pixels must be
    turned), not 8-bit Huffman-coded, not 1 or 3 components (CMYK) - or when its structure is not the
    plain one walked here; the caller then decodes and re-encodes as usual.
    """
    if not data.startswith(b"\xff\xd8"):
        return None
    try:
        header = _read_header(data, "jpeg")
    except BadImageError:
        return None
    if header.orientation != 1:
        return None
    out = [b"\xff\xd8"]
    n, i = len(data), 2
    frame_ok = False
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0xD9, 0x01) or 0xD0 <= marker <= 0xD7:
            return None  # no SOI/EOI/TEM/RST belongs between segments before the first scan
        length = (data[i + 2] << 8) | data[i + 3]
        end = i + 2 + length
        if length < 2 or end > n:
            return None
        payload = data[i + 4:end]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a frame header (SOFn)
            if marker not in _SOF_HUFFMAN or len(payload) < 6 or payload[0] != 8 or payload[5] not in (1, 3):
                return None
            frame_ok = True
        if marker == 0xDA:  # start of the first scan: the rest is the image, up to its EOI
            if not frame_ok:
                return None
            eoi = _end_of_image(data, end)
            if eoi is None:
                return None
            out.append(data[i:eoi])
            return b"".join(out)
        keep = not (0xE0 <= marker <= 0xEF or marker == 0xFE) or any(
            marker == m and payload.startswith(sig) for m, sig in _KEEP_APP)
        if keep:
            out.append(data[i:end])
        i = end
    return None


def _end_of_image(data: bytes, pos: int) -> int | None:
    """Index just past the EOI ending the image whose entropy-coded data starts at ``pos`` (progressive
    files interleave tables and scans: their segments are stepped over)."""
    n = len(data)
    while True:
        j = data.find(b"\xff", pos)
        if j < 0 or j + 1 >= n:
            return None
        marker = data[j + 1]
        if marker == 0x00 or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            pos = j + 1 if marker == 0xFF else j + 2
            continue
        if marker == 0xD9:
            return j + 2
        if j + 4 > n or 0xE0 <= marker <= 0xEF or marker == 0xFE:
            return None  # truncated, or metadata between scans: let the caller re-encode
        pos = j + 2 + ((data[j + 2] << 8) | data[j + 3])  # DHT, DQT, DRI, SOS... between scans


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
            "orientation": decoded.orientation, "icc": decoded.icc_profile is not None, "reduced": decoded.reduced}
