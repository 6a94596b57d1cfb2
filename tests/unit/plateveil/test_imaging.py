"""plateveil.imaging: format sniffing, EXIF orientation, metadata, bad input, encoding."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from plateveil import imaging
from plateveil.errors import BadImageError

# what exif_transpose does for each orientation, and the inverse used to make the stored pixels
_TRANSPOSE = {
    1: (None, None),
    2: (Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_LEFT_RIGHT),
    3: (Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_180),
    4: (Image.Transpose.FLIP_TOP_BOTTOM, Image.Transpose.FLIP_TOP_BOTTOM),
    5: (Image.Transpose.TRANSPOSE, Image.Transpose.TRANSPOSE),
    6: (Image.Transpose.ROTATE_270, Image.Transpose.ROTATE_90),
    7: (Image.Transpose.TRANSVERSE, Image.Transpose.TRANSVERSE),
    8: (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270),
}


def upright_rgb(w: int = 48, h: int = 32) -> np.ndarray:
    """An asymmetric picture: red block top-left, green bar along the bottom, blue dot right."""
    img = np.full((h, w, 3), 128, dtype=np.uint8)
    img[2:10, 2:14] = (255, 0, 0)
    img[h - 6:h - 2, 4:w - 4] = (0, 255, 0)
    img[12:20, w - 10:w - 2] = (0, 0, 255)
    return img


def save(pil: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        kwargs.setdefault("quality", 95)
        kwargs.setdefault("subsampling", 0)  # full-resolution chroma: sharp colour edges
    if fmt == "WEBP":
        kwargs.setdefault("lossless", True)
    pil.save(buf, fmt, **kwargs)
    return buf.getvalue()


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def jpeg_bytes(w: int = 64, h: int = 48, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 2)
    return cv2.imencode(".jpg", img)[1].tobytes()


# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "expected"), [("JPEG", "jpeg"), ("PNG", "png"), ("WEBP", "webp"),
                                               ("GIF", "gif"), ("BMP", "bmp"), ("TIFF", "tiff")])
def test_sniff_image_formats(fmt, expected):
    assert imaging.sniff_image(save(Image.fromarray(upright_rgb()), fmt)) == expected


@pytest.mark.parametrize("data", [b"", b"hello world", b"RIFF\x00\x00\x00\x00WAVEfmt ", b"<svg></svg>"])
def test_sniff_image_rejects_non_images(data):
    assert imaging.sniff_image(data) is None


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_comes_out_upright(fmt, orientation):
    upright = upright_rgb()
    _, inverse = _TRANSPOSE[orientation]
    stored = Image.fromarray(upright)
    if inverse is not None:
        stored = stored.transpose(inverse)
    exif = Image.Exif()
    exif[0x0112] = orientation
    decoded = imaging.decode(save(stored, fmt, exif=exif.tobytes()))
    assert decoded.orientation == orientation
    assert decoded.image_bgr.shape == (32, 48, 3)
    assert decoded.image_bgr.dtype == np.uint8 and decoded.image_bgr.flags.c_contiguous
    diff = np.abs(decoded.image_bgr[:, :, ::-1].astype(int) - upright.astype(int))
    assert diff.mean() < (6 if fmt == "JPEG" else 0.01)


def _exif_with_gps() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 1
    exif[0x010F] = "AcmeCam"  # Make
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (52.0, 31.0, 12.0)
    gps[3] = "E"
    gps[4] = (13.0, 24.0, 36.0)
    return exif.tobytes()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_and_gps_dropped_icc_kept(fmt):
    icc = srgb_profile()
    data = save(Image.fromarray(upright_rgb()), fmt, exif=_exif_with_gps(), icc_profile=icc)
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825)  # the source really has GPS
    decoded = imaging.decode(data)
    assert decoded.icc_profile == icc
    out = imaging.encode(decoded.image_bgr, decoded.format, icc_profile=decoded.icc_profile)
    assert imaging.sniff_image(out) == decoded.format
    reopened = Image.open(io.BytesIO(out))
    reopened.load()
    assert reopened.info.get("icc_profile") == icc
    assert "exif" not in reopened.info
    assert len(reopened.getexif()) == 0
    assert b"AcmeCam" not in out
    assert imaging.decode(out).icc_profile == icc


def test_large_icc_profile_split_over_app2_segments():
    icc = bytes(range(256)) * 600  # 153,600 bytes: three APP2 segments
    out = imaging.encode(np.zeros((16, 16, 3), np.uint8), "jpeg", icc_profile=icc)
    assert Image.open(io.BytesIO(out)).info["icc_profile"] == icc
    assert imaging.decode(out).icc_profile is None  # not a valid profile (and over 128 KiB): dropped


def test_no_icc_means_none():
    decoded = imaging.decode(jpeg_bytes())
    assert decoded.icc_profile is None
    assert decoded.format == "jpeg"


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_encode_same_format_and_similar_pixels(fmt):
    img = cv2.GaussianBlur(np.random.default_rng(1).integers(0, 256, (60, 80, 3), dtype=np.uint8), (0, 0), 2)
    out = imaging.encode(img, fmt, jpeg_quality=92)
    assert imaging.sniff_image(out) == fmt
    back = imaging.decode(out).image_bgr
    assert back.shape == img.shape
    assert cv2.PSNR(back, img) > (100 if fmt == "png" else 30)


def test_lossless_inputs_other_than_png_are_written_as_png():
    data = save(Image.fromarray(upright_rgb()), "BMP")
    decoded = imaging.decode(data)
    assert decoded.format == "bmp"
    assert imaging.output_format("bmp") == "png"
    assert imaging.sniff_image(imaging.encode(decoded.image_bgr, decoded.format)) == "png"


def test_grayscale_alpha_and_16_bit_become_8_bit_bgr():
    gray = imaging.decode(save(Image.fromarray(np.full((10, 12), 77, np.uint8), "L"), "PNG"))
    assert gray.image_bgr.shape == (10, 12, 3) and (gray.image_bgr == 77).all()

    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :6, 3] = 255  # left half opaque red, right half fully transparent
    out = imaging.decode(save(Image.fromarray(rgba, "RGBA"), "PNG")).image_bgr
    assert out.shape == (10, 12, 3)
    assert out[0, 0].tolist() == [0, 0, 255]
    assert out[0, 11].tolist() == [255, 255, 255]  # composited over white

    deep = np.full((8, 9, 3), 40000, np.uint16)
    ok, buf = cv2.imencode(".png", deep)
    assert ok
    img16 = imaging.decode(buf.tobytes()).image_bgr
    assert img16.dtype == np.uint8 and img16.shape == (8, 9, 3)
    assert abs(int(img16[0, 0, 0]) - 40000 // 257) <= 1


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "empty"),
    (b"this is not an image at all", "not an image"),
    (b"GIF89a" + b"\x00" * 40, "unsupported"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "jpeg"),
])
def test_bad_bytes_raise_bad_image_error(data, reason):
    with pytest.raises(BadImageError, match=f"(?i){reason}"):
        imaging.decode(data)


def test_truncated_jpeg_is_rejected():
    data = jpeg_bytes(200, 150)
    with pytest.raises(BadImageError, match="truncated"):
        imaging.decode(data[: len(data) * 2 // 3])


def test_truncated_png_is_rejected():
    data = cv2.imencode(".png", np.random.default_rng(2).integers(0, 256, (120, 160, 3), dtype=np.uint8))[1]
    with pytest.raises(BadImageError):
        imaging.decode(data.tobytes()[: len(data) // 2])


def test_jpeg_with_trailing_bytes_still_decodes():
    data = jpeg_bytes() + b"\x00" * 32
    assert imaging.decode(data).image_bgr.shape == (48, 64, 3)


def test_pixel_limit_is_a_parameter():
    data = jpeg_bytes(100, 80)
    assert imaging.decode(data, max_pixels=8000).width == 100
    with pytest.raises(BadImageError, match="too large"):
        imaging.decode(data, max_pixels=7999)


def test_decompression_bomb_header_rejected_before_decoding():
    """A PNG whose header claims 30000 x 30000 pixels is refused from the header alone."""
    png = bytearray(cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes())
    ihdr = bytes(png[12:16]) + struct.pack(">II", 30000, 30000) + bytes(png[24:29])
    png[16:24] = ihdr[4:12]
    png[29:33] = struct.pack(">I", zlib.crc32(ihdr))
    with pytest.raises(BadImageError, match="too large"):
        imaging.decode(bytes(png))


def test_sniffing_imports_no_image_library():
    """The upload service uses sniff_image/output_format; importing them must stay light."""
    code = ("import sys, plateveil.imaging as m; assert m.sniff_image(b'\\x89PNG\\r\\n\\x1a\\n') == 'png'; "
            "print(sorted(k for k in ('numpy', 'cv2', 'PIL') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(Path(__file__).resolve().parents[3]))
    assert out.stdout.strip() == "[]"
