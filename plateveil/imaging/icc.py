"""ICC colour profiles: which ones are kept (checked, at most :data:`MAX_ICC_BYTES`) and splicing one into an
encoded JPEG, PNG or WebP so that pixels are encoded once.
"""

from __future__ import annotations

import io
import logging
import struct
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where pixels are handled (the upload service imports this package without it)
    pass

logger = logging.getLogger("plateveil.imaging")


MAX_ICC_BYTES = 128 * 1024
"""Largest ICC profile kept (sRGB is 3 KB, Display P3 0.5 KB); larger ones are dropped."""


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
