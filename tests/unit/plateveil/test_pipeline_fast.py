"""plateveil.pipeline fast paths with a two-stage finder: detector on a reduced decode, full decode only
where something was found, JPEGs without plates kept as they came (metadata removed)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from model_store.runtime import PlateFinding, Timings
from plateveil import imaging
from plateveil.imaging import jpeg_blocks
from plateveil.pipeline import TIMING_KEYS, TwoStageFinder, conceal_bytes

PLATE = PlateFinding(polygon=((98.0, 148.0), (222.0, 148.0), (222.0, 182.0), (98.0, 182.0)),
                     score=0.9, box=(98.0, 148.0, 222.0, 182.0), det_score=0.8)


@dataclass
class TwoStageFake:
    """Reports ``boxes`` from its detector and ``plates`` from its landmarks; notes what it was given."""

    boxes: list[Any]
    plates: list[PlateFinding]
    detector_long_side: int = 160
    tag: str = "fake@2"
    seen: dict[str, Any] = field(default_factory=dict)

    def find_plates(self, image_bgr):
        self.seen["find_plates"] = image_bgr.shape
        return list(self.plates), Timings(detect=0.5, landmarks=0.25)

    def detect(self, image_bgr, score_threshold=None, photo_size=None):
        self.seen["detect"] = (image_bgr.shape, photo_size)
        return list(self.boxes)

    def refine(self, image_bgr, detections):
        self.seen["refine"] = image_bgr.shape
        return list(self.plates)


def photo_jpeg(orientation: int = 1, w: int = 320, h: int = 240) -> tuple[bytes, np.ndarray]:
    """(JPEG with EXIF (GPS, maker) and the given orientation, the upright RGB picture)."""
    rng = np.random.default_rng(0)
    rgb = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 2)
    stored = Image.fromarray(rgb)
    if orientation == 6:
        stored = stored.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "AcmeCam"
    exif.get_ifd(0x8825)[2] = (52.0, 31.0, 12.0)
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=92, exif=exif.tobytes())
    return buf.getvalue(), rgb


def test_the_shipped_model_is_a_two_stage_finder():
    from model_store.runtime import load_model

    assert isinstance(load_model(), TwoStageFinder)


def test_no_plate_jpeg_is_kept_as_it_came_without_metadata():
    data, _ = photo_jpeg()
    finder = TwoStageFake(boxes=[], plates=[])
    result = conceal_bytes(data, finder, reduced_decode=True)
    assert finder.seen["detect"] == ((120, 160, 3), (320, 240))  # decoded at 1/2 scale for the detector
    assert "refine" not in finder.seen and "find_plates" not in finder.seen
    assert result.image_bytes == imaging.strip_jpeg_metadata(data)
    original = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(imaging.decode(result.image_bytes).image_bgr, original)  # no generation loss
    assert b"AcmeCam" not in result.image_bytes
    assert (result.width, result.height, result.format, result.plates) == (320, 240, "jpeg", [])
    assert set(result.timings_ms) == set(TIMING_KEYS)
    assert result.timings_ms["landmarks"] == 0 and result.timings_ms["conceal"] == 0


def test_found_plates_are_concealed_on_the_full_size_photo():
    data, rgb = photo_jpeg()
    finder = TwoStageFake(boxes=["a detection"], plates=[PLATE])
    result = conceal_bytes(data, finder, style="solid", reduced_decode=True)
    assert finder.seen["refine"] == (240, 320, 3)
    assert result.plates == [PLATE] and (result.width, result.height) == (320, 240)
    out = imaging.decode(result.image_bytes).image_bgr[:, :, ::-1].astype(int)
    assert np.abs(out[152:178, 102:218] - rgb[152:178, 102:218]).mean() > 10   # the plate is covered
    keep = np.ones(rgb.shape[:2], bool)
    keep[140:190, 90:230] = False
    assert np.abs(out[keep] - rgb[keep].astype(int)).mean() < 3                  # the rest: one re-encode
    assert b"AcmeCam" not in result.image_bytes


def test_detections_the_landmarks_reject_still_lose_nothing():
    data, _ = photo_jpeg()
    finder = TwoStageFake(boxes=["a look-alike"], plates=[])
    result = conceal_bytes(data, finder, reduced_decode=True)
    assert finder.seen["refine"] == (240, 320, 3)
    assert result.image_bytes == imaging.strip_jpeg_metadata(data)


def test_an_exif_rotated_photo_without_plates_is_turned_and_re_encoded():
    data, rgb = photo_jpeg(orientation=6)
    result = conceal_bytes(data, TwoStageFake(boxes=[], plates=[]), style="none", reduced_decode=True)
    assert imaging.strip_jpeg_metadata(data) is None
    reopened = Image.open(io.BytesIO(result.image_bytes))
    assert reopened.size == (320, 240) and len(reopened.getexif()) == 0
    out = np.asarray(reopened.convert("RGB")).astype(int)
    assert np.abs(out - rgb.astype(int)).mean() < 4   # upright, as today


def test_png_goes_the_full_way():
    png = cv2.imencode(".png", np.full((240, 320, 3), 90, np.uint8))[1].tobytes()
    finder = TwoStageFake(boxes=[], plates=[])
    result = conceal_bytes(png, finder)
    assert finder.seen["detect"] == ((240, 320, 3), None)
    assert result.format == "png" and imaging.sniff_image(result.image_bytes) == "png"


@pytest.mark.skipif(jpeg_blocks.available() is not None,
                    reason=f"{jpeg_blocks.available()} (without it the default is the whole-photo path)")
def test_by_default_the_detector_sees_a_reduced_decode_and_a_no_plate_jpeg_is_not_re_encoded():
    # issue 37: a baseline JPEG takes the plate-blocks path; the detector sees the DCT-scaled decode
    data, _ = photo_jpeg()
    finder = TwoStageFake(boxes=[], plates=[])
    result = conceal_bytes(data, finder)
    assert finder.seen["detect"] == ((120, 160, 3), (320, 240))
    assert result.encoding == {"path": "lossless"}
    assert result.image_bytes == imaging.strip_jpeg_metadata(data)
    assert set(result.timings_ms) == set(TIMING_KEYS) and result.timings_ms["conceal"] == 0


def test_plate_blocks_off_the_detector_sees_the_full_photo_and_a_no_plate_jpeg_is_not_re_encoded():
    data, _ = photo_jpeg()
    finder = TwoStageFake(boxes=[], plates=[])
    result = conceal_bytes(data, finder, plate_blocks=False)
    assert finder.seen["detect"] == ((240, 320, 3), None)
    assert result.image_bytes == imaging.strip_jpeg_metadata(data)
    assert set(result.timings_ms) == set(TIMING_KEYS) and result.timings_ms["conceal"] == 0


@pytest.mark.parametrize("boxes", [[], ["a detection"]])
def test_fast_paths_off_is_the_reference_path(boxes):
    data, _ = photo_jpeg()
    finder = TwoStageFake(boxes=boxes, plates=[PLATE] if boxes else [])
    result = conceal_bytes(data, finder, fast_paths=False)
    assert finder.seen == {"find_plates": (240, 320, 3)}
    assert result.image_bytes != imaging.strip_jpeg_metadata(data)  # re-encoded
