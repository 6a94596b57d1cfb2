"""model_store.runtime.PlateModel.detect on a reduced copy of a photo gives boxes in the photo's pixels."""

from __future__ import annotations

import cv2
import pytest

from model_store.runtime import load_model
from plateveil_ops.samples import render_scene


def test_boxes_from_a_half_size_copy_are_the_photo_boxes():
    model = load_model()
    side = model.detector_long_side
    image = render_scene(3, (2 * side, 3 * side // 2)).image_bgr
    h, w = image.shape[:2]
    half = cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)  # the detector's own input size
    full_boxes = model.detect(image, score_threshold=0.01)
    half_boxes = model.detect(half, score_threshold=0.01, photo_size=(w, h))
    assert full_boxes, "the scene should give some candidates at score 0.01"
    assert len(half_boxes) == len(full_boxes)
    for a, b in zip(full_boxes, half_boxes, strict=True):
        assert b.box == pytest.approx(a.box, abs=0.05)
        assert b.score == pytest.approx(a.score, abs=1e-5)
        assert 0 <= b.box[0] < b.box[2] <= w and 0 <= b.box[1] < b.box[3] <= h
