"""Image formats from the bytes alone: magic-byte sniffing, animation refusal, the output format of
each input, content types and extensions. Imports nothing but the standard library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where pixels are handled (the upload service imports this package without it)
    pass



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
