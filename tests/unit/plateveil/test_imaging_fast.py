"""plateveil.imaging fast paths: JPEG decoded at reduced scale, metadata removed without re-encoding."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from plateveil import imaging

_STORE = {  # the transpose that makes the stored pixels of an upright picture for each EXIF orientation
    1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def picture(w: int = 320, h: int = 200) -> np.ndarray:
    """RGB, smooth, asymmetric: a red block top-left, a blue block right, a green bar along the bottom."""
    img = np.full((h, w, 3), 128, np.uint8)
    img[10:60, 10:90] = (255, 0, 0)
    img[70:130, w - 80:w - 10] = (0, 0, 255)
    img[h - 30:h - 10, 20:w - 20] = (0, 255, 0)
    return cv2.GaussianBlur(img, (0, 0), 1.5)


def jpeg(rgb: np.ndarray, orientation: int = 1, progressive: bool = False, comment: bytes | None = None,
         icc: bytes | None = None, gps: bool = True, mode: str = "RGB") -> bytes:
    stored = Image.fromarray(rgb).convert(mode)
    if _STORE[orientation] is not None:
        stored = stored.transpose(_STORE[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "AcmeCam"
    if gps:
        exif.get_ifd(0x8825)[2] = (52.0, 31.0, 12.0)
    buf = io.BytesIO()
    kwargs = {"quality": 92, "exif": exif.tobytes(), "progressive": progressive}
    if comment is not None:
        kwargs["comment"] = comment
    if icc is not None:
        kwargs["icc_profile"] = icc
    stored.save(buf, "JPEG", **kwargs)
    return buf.getvalue()


def pixels(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize("progressive", [False, True])
def test_strip_keeps_the_compressed_image_and_icc_drops_exif_gps_comments(progressive):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = jpeg(picture(), progressive=progressive, comment=b"shot by AcmeCam at home", icc=icc)
    data += b"\xff\xd8\xff\xe1 appended preview with metadata"  # trailing data after EOI
    out = imaging.strip_jpeg_metadata(data)
    assert out is not None and len(out) < len(data)
    assert np.array_equal(pixels(out), pixels(data))  # same compressed data: the same pixels, bit for bit
    assert out.endswith(b"\xff\xd9")
    assert b"AcmeCam" not in out and b"Exif\x00" not in out and b"appended preview" not in out
    reopened = Image.open(io.BytesIO(out))
    reopened.load()
    assert reopened.info.get("icc_profile") == icc
    assert len(reopened.getexif()) == 0 and "comment" not in reopened.info
    assert imaging.decode(out).icc_profile == icc


@pytest.mark.parametrize("orientation", range(2, 9))
def test_strip_refuses_a_photo_that_must_be_turned(orientation):
    assert imaging.strip_jpeg_metadata(jpeg(picture(), orientation=orientation)) is None


@pytest.mark.parametrize("data", [
    b"", b"not a jpeg", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
])
def test_strip_refuses_what_is_not_a_jpeg(data):
    assert imaging.strip_jpeg_metadata(data) is None


def test_strip_refuses_cmyk_and_truncated():
    assert imaging.strip_jpeg_metadata(jpeg(picture(), mode="CMYK")) is None
    good = jpeg(picture())
    assert imaging.strip_jpeg_metadata(good[: len(good) // 2]) is None


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
@pytest.mark.parametrize("factor", [2, 4])
def test_reduced_decode_is_upright_and_reports_the_photo_size(orientation, factor):
    rgb = picture()
    decoded = imaging.decode(jpeg(rgb, orientation=orientation), reduce=factor)
    full = imaging.decode(jpeg(rgb, orientation=orientation))
    assert (decoded.width, decoded.height) == (full.width, full.height) == (320, 200)
    assert decoded.reduced == factor
    assert decoded.image_bgr.shape == (200 // factor, 320 // factor, 3)
    expected = cv2.resize(full.image_bgr, (320 // factor, 200 // factor), interpolation=cv2.INTER_AREA)
    assert np.abs(decoded.image_bgr.astype(int) - expected.astype(int)).mean() < 4


def test_reduced_decode_ignored_for_other_formats():
    png = cv2.imencode(".png", picture())[1].tobytes()
    decoded = imaging.decode(png, reduce=2)
    assert decoded.reduced == 1 and decoded.image_bgr.shape == (200, 320, 3)


@pytest.mark.parametrize(("size", "min_side", "factor"), [
    ((1280, 720), 640, 2), ((1920, 1080), 640, 2), ((2600, 1000), 640, 4), ((6000, 4000), 640, 8),
    ((1024, 768), 640, 1), ((640, 480), 640, 1), ((720, 1280), 640, 2),
])
def test_reduction_keeps_the_detector_input_size(size, min_side, factor):
    w, h = size
    data = cv2.imencode(".jpg", np.zeros((h, w, 3), np.uint8))[1].tobytes()
    assert imaging.reduction_for(data, min_side) == factor


def test_reduction_is_one_for_non_jpeg_and_junk():
    assert imaging.reduction_for(cv2.imencode(".png", picture())[1].tobytes(), 64) == 1
    assert imaging.reduction_for(b"\xff\xd8\xff junk", 64) == 1
