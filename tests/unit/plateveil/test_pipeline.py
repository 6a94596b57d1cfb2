"""plateveil.pipeline: the stages end to end, with the shipped model and with fixed findings."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
from PIL import Image

from model_store.runtime import PlateFinding, Timings, load_model
from plateveil import imaging
from plateveil.errors import BadImageError, UnknownStyleError
from plateveil.pipeline import TIMING_KEYS, PipelineResult, conceal_bytes


@pytest.fixture(scope="module")
def model():
    return load_model()  # the shipped bundle; what it finds is not asserted


@dataclass
class FixedFinder:
    """A plate finder that reports the same plates for every image (plain values, no model)."""

    plates: list[PlateFinding]
    tag: str = "fixed@1"

    def find_plates(self, image_bgr):
        return list(self.plates), Timings(detect=0.5, landmarks=0.25)


def photo(w: int = 320, h: int = 240, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 2)
    cv2.rectangle(img, (100, 150), (220, 180), (255, 255, 255), -1)
    cv2.putText(img, "XY 987", (108, 174), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 2)
    return img


PLATE = PlateFinding(polygon=((98.0, 148.0), (222.0, 148.0), (222.0, 182.0), (98.0, 182.0)),
                     score=0.9, box=(98.0, 148.0, 222.0, 182.0), det_score=0.8)


def encoded(img: np.ndarray, ext: str = ".jpg") -> bytes:
    return cv2.imencode(ext, img)[1].tobytes()


def test_end_to_end_with_the_shipped_model(model):
    result = conceal_bytes(encoded(photo()), model)
    assert isinstance(result, PipelineResult)
    assert (result.format, result.content_type) == ("jpeg", "image/jpeg")
    assert (result.width, result.height) == (320, 240)
    assert set(result.timings_ms) == set(TIMING_KEYS)
    assert all(isinstance(v, float) and v >= 0 for v in result.timings_ms.values())
    stages = sum(result.timings_ms[k] for k in TIMING_KEYS if k != "total")
    assert result.timings_ms["total"] >= 0.9 * stages
    assert result.model == model.tag
    assert all(isinstance(p, PlateFinding) for p in result.plates)
    out = imaging.decode(result.image_bytes)
    assert (out.width, out.height, out.format) == (320, 240, "jpeg")
    d = result.to_dict()
    assert "image_bytes" not in d
    json.dumps(d)
    assert d["model"] == model.tag and len(d["plates"]) == len(result.plates)


@pytest.mark.parametrize("style", ["blur", "pixelate", "solid", "overlay"])
def test_plates_are_concealed_and_the_rest_kept(style):
    img = photo()
    result = conceal_bytes(encoded(img, ".png"), FixedFinder([PLATE]), style=style)
    assert result.format == "png"
    out = imaging.decode(result.image_bytes).image_bgr
    plate_region = (slice(152, 178), slice(102, 218))
    assert np.abs(out[plate_region].astype(int) - img[plate_region].astype(int)).mean() > 10
    keep = np.ones(img.shape[:2], bool)
    keep[140:190, 90:230] = False
    assert (out[keep] == img[keep]).all()  # PNG is lossless: untouched pixels are identical
    assert result.plates == [PLATE]
    assert result.timings_ms["detect"] == 0.5 and result.timings_ms["landmarks"] == 0.25


def test_style_none_round_trips_the_pixels():
    img = photo()
    result = conceal_bytes(encoded(img, ".png"), FixedFinder([PLATE]), style="none")
    assert (imaging.decode(result.image_bytes).image_bgr == img).all()


def test_webp_in_webp_out():
    result = conceal_bytes(encoded(photo(), ".webp"), FixedFinder([]))
    assert (result.format, result.content_type) == ("webp", "image/webp")
    assert imaging.sniff_image(result.image_bytes) == "webp"


def test_exif_rotated_input_is_processed_upright():
    upright = photo(120, 200)
    stored = Image.fromarray(upright[:, :, ::-1]).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    result = conceal_bytes(buf.getvalue(), FixedFinder([]), style="none")
    assert (result.width, result.height) == (120, 200)
    out = Image.open(io.BytesIO(result.image_bytes))
    assert out.size == (120, 200) and len(out.getexif()) == 0


def test_unknown_style_is_checked_before_decoding():
    with pytest.raises(UnknownStyleError, match="valid styles"):
        conceal_bytes(b"definitely not an image", FixedFinder([]), style="glitter")


@pytest.mark.parametrize("data", [b"", b"not an image", encoded(photo())[:500]])
def test_bad_bytes_raise_bad_image_error(data):
    with pytest.raises(BadImageError):
        conceal_bytes(data, FixedFinder([]))


def test_pixel_limit_passes_through():
    with pytest.raises(BadImageError, match="too large"):
        conceal_bytes(encoded(photo()), FixedFinder([]), max_pixels=1000)
