"""plateveil.imaging: the decode memory budget (from the header, before decoding), banded
conversions, ICC validation, animated images refused, no object reprs in errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from plateveil import imaging
from plateveil.errors import BadImageError
from plateveil_ops.samples import flat_png

MB = 2**20


def _peak_rss_of_decode(data: bytes) -> dict:
    """Decode in a fresh process; its peak RSS before and after (ru_maxrss, MB) and the outcome."""
    code = r"""
import json, resource, sys
import cv2, numpy, PIL.Image
from plateveil import imaging
data = sys.stdin.buffer.read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    imaging.decode(data); outcome = "decoded"
except imaging.BadImageError as exc:
    outcome = str(exc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before": before / 1024, "after": after / 1024, "outcome": outcome}))
"""
    out = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, check=True)
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


@pytest.mark.parametrize(("bit_depth", "need_mib"), [(8, 334), (16, 524)])
def test_7070_square_alpha_png_is_refused_without_large_memory(bit_depth, need_mib):
    data = flat_png(7070, 7070, color_type=6, bit_depth=bit_depth)
    assert len(data) < 500_000  # a small file...
    with pytest.raises(BadImageError, match=f"needs {need_mib} MiB to decode .*7070x7070, 4 channels, "
                                            f"{bit_depth}-bit.*over the 256 MiB decode budget"):
        imaging.decode(data)
    rss = _peak_rss_of_decode(data)
    assert "decode budget" in rss["outcome"]
    assert rss["after"] - rss["before"] < 50, rss  # ...refused from its header (was +2.1 / +2.5 GB)


def test_budget_counts_channels_and_bytes_per_sample():
    rgb8 = imaging.Header(1000, 1000, 3, 1)
    assert rgb8.decode_bytes() == 3_000_000  # decoded in place, no copy
    assert imaging.Header(1000, 1000, 4, 1).decode_bytes() == 4_000_000 + 3_000_000
    assert imaging.Header(1000, 1000, 4, 2).decode_bytes() == 8_000_000 + 3_000_000
    assert imaging.Header(1000, 1000, 1, 1).decode_bytes() == 1_000_000 + 3_000_000
    assert rgb8.decode_bytes(reduce=2) == 500 * 500 * 3


@pytest.mark.parametrize(("color_type", "bit_depth", "layout"), [(0, 8, (1, 1)), (2, 8, (3, 1)), (2, 16, (3, 2)),
                                                                 (4, 8, (4, 1)), (6, 16, (4, 2))])
def test_png_layout_comes_from_ihdr(color_type, bit_depth, layout):
    data = flat_png(16, 8, color_type, bit_depth)
    header = imaging._read_header(data, "png")
    assert (header.width, header.height, header.channels, header.bytes_per_sample) == (16, 8, *layout)


def test_a_jpeg_over_the_budget_is_decoded_at_reduced_scale():
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (600, 800, 3), dtype=np.uint8), (0, 0), 3)
    data = cv2.imencode(".jpg", img)[1].tobytes()
    assert imaging.decode(data).reduced == 1
    half = imaging.decode(data, budget_bytes=400 * 300 * 3)
    assert half.reduced == 2 and half.image_bgr.shape == (300, 400, 3)
    eighth = imaging.decode(data, budget_bytes=100 * 75 * 3)
    assert eighth.reduced == 8 and eighth.image_bgr.shape == (75, 100, 3)
    small = cv2.resize(img, (400, 300), interpolation=cv2.INTER_AREA)
    assert np.abs(half.image_bgr.astype(int) - small).mean() < 4
    with pytest.raises(BadImageError, match="decode budget"):
        imaging.decode(data, budget_bytes=1000)


def test_a_png_over_the_budget_is_refused():
    data = flat_png(100, 100, color_type=2)
    assert imaging.decode(data, budget_bytes=30_000).width == 100
    with pytest.raises(BadImageError, match="needs 0 MiB to decode \\(100x100, 3 channels, 8-bit\\)"):
        imaging.decode(data, budget_bytes=29_999)


def test_banded_conversion_equals_a_whole_one():
    rng = np.random.default_rng(1)
    for raw in (rng.integers(0, 256, (37, 23, 4), dtype=np.uint8), rng.integers(0, 65536, (37, 23, 4), dtype=np.uint16),
                rng.integers(0, 256, (37, 23), dtype=np.uint8), rng.integers(0, 256, (37, 23, 2), dtype=np.uint8)):
        whole = imaging._to_bgr8(raw, band_samples=10**9)
        banded = imaging._to_bgr8(raw, band_samples=50)
        assert whole.shape == (37, 23, 3) and whole.dtype == np.uint8
        assert np.array_equal(whole, banded)
    rgba = rng.integers(0, 256, (5, 6, 4), dtype=np.uint8)
    a = rgba[:, :, 3:4].astype(np.float64) / 255
    expected = np.floor(rgba[:, :, :3] * a + 255 * (1 - a) + 0.5)
    assert np.abs(imaging._to_bgr8(rgba).astype(int) - expected).max() <= 1


def _srgb() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_icc_profiles_are_validated_and_size_limited():
    srgb = _srgb()
    assert imaging._valid_icc(srgb) == srgb
    assert imaging._valid_icc(srgb, max_bytes=len(srgb) - 1) is None
    assert imaging._valid_icc(srgb[:-10]) is None  # size field no longer matches
    assert imaging._valid_icc(b"\x00" * 1_000_000) is None
    junk = bytearray(srgb)
    junk[36:40] = b"xxxx"
    assert imaging._valid_icc(bytes(junk)) is None
    broken = bytearray(srgb)
    broken[136:140] = (len(srgb) - 4).to_bytes(4, "big")  # first tag's data runs past the end
    assert imaging._valid_icc(bytes(broken)) is None


def test_a_junk_icc_profile_is_not_copied_to_the_output():
    junk = b"\x00\x10\x00\x00" + b"\x5a" * (2**20 - 4)  # 1 MB, claims 1 MB, no signature
    buf = io.BytesIO()
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(buf, "PNG", icc_profile=junk)
    decoded = imaging.decode(buf.getvalue())
    assert decoded.icc_profile is None
    out = imaging.encode(decoded.image_bgr, decoded.format, icc_profile=decoded.icc_profile)
    assert "icc_profile" not in Image.open(io.BytesIO(out)).info


@pytest.mark.parametrize("fmt", ["WEBP", "PNG"])
def test_animated_images_are_refused_with_a_clear_reason(fmt):
    frames = [Image.fromarray(np.full((16, 16, 3), v, np.uint8)) for v in (0, 120, 250)]
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    data = buf.getvalue()
    name = "WebP" if fmt == "WEBP" else "PNG \\(APNG\\)"
    with pytest.raises(BadImageError, match=f"animated {name} is not supported"):
        imaging.decode(data)
    assert imaging.animation(data) is not None
    still = io.BytesIO()
    frames[0].save(still, fmt)
    assert imaging.animation(still.getvalue()) is None


def test_header_errors_carry_no_object_repr():
    with pytest.raises(BadImageError) as err:
        imaging.decode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    assert " at 0x" not in str(err.value) and "BytesIO" not in str(err.value)
