"""What a photo's header says (size, decoded layout, EXIF orientation, ICC profile), read with Pillow
without decoding a pixel; the decode budget and the JPEG byte surgery both start from it.
"""

from __future__ import annotations

import io
import logging
import re
import struct
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plateveil.errors import BadImageError

if TYPE_CHECKING:  # numpy is imported where pixels are handled (the upload service imports this package without it)
    pass

logger = logging.getLogger("plateveil.imaging")


_EXIF_ORIENTATION = 0x0112


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
