"""Landmark-sampler negatives: boxes beside a plate, and the generator's non-plates pasted onto a photo."""

from __future__ import annotations

import numpy as np

from model_training.augment import LandmarkSampler, Photo
from model_training.evaluate import near_box
from model_training.train import default_config
from plateveil.geometry import box_iou


def _photo(boxes: list[list[float]]) -> Photo:
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    return Photo(np.full((600, 800, 3), 90, np.uint8), b, np.full((len(b), 4, 2), np.nan, np.float32), "t")


def test_context_negatives_sit_beside_the_plate_and_clear_of_it() -> None:
    plate = [360.0, 400.0, 440.0, 420.0]    # 80 x 20
    photo = _photo([plate])
    sampler = LandmarkSampler([photo], default_config()["landmarks"], seed=5)
    near = np.asarray(near_box(np.asarray(plate)), np.float32)
    boxes = [b for b in (sampler._context_box(photo) for _ in range(200)) if b is not None]
    assert len(boxes) > 150
    for b in boxes:
        assert 0 <= b[0] < b[2] <= 800 and 0 <= b[1] < b[3] <= 600
        assert box_iou(b[None], near[None])[0, 0] < 0.05           # never the plate or its surroundings
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        assert abs(cx - 400) <= 4 * 80 and -6 * 20 <= cy - 410 <= 2 * 20   # within reach of the plate
    widths = np.array([b[2] - b[0] for b in boxes])
    assert 50 < np.median(widths) < 130                                # about a plate's size
    assert sampler._context_box(_photo([])) is None


def test_sampler_with_context_negatives_keeps_its_labels() -> None:
    photo = _photo([[360, 400, 440, 420]])
    photo.image[400:420, 360:440] = 230
    for neg_p, label in [(0.0, 1.0), (1.0, 0.0)]:
        sampler = LandmarkSampler([photo], default_config()["landmarks"], synth_p=0.0, neg_p=neg_p, seed=2,
                                  hard_p=0.0, context_p=1.0)
        for _ in range(8):
            x, corners, got, weight = sampler.sample()
            assert got == label and (weight > 0) == (label == 1.0)
            assert x.shape == (3, 64, 128)


def test_synthetic_negatives_are_pasted_where_their_box_says_and_clear_of_the_plates() -> None:
    plate = [360.0, 400.0, 440.0, 420.0]
    photo = _photo([plate])
    sampler = LandmarkSampler([photo], default_config()["landmarks"], seed=4)
    near = np.asarray(near_box(np.asarray(plate)), np.float32)
    for _ in range(10):
        made = sampler._synthetic_negative(photo)
        assert made is not None
        image, box = made
        assert image.shape == photo.image.shape
        np.testing.assert_array_equal(photo.image, 90)                 # the photo itself is left alone
        assert box_iou(box[None], near[None])[0, 0] < 0.05
        x0, y0, x1, y1 = np.round(box).astype(int)
        changed = np.abs(image.astype(int) - 90).max(axis=2) > 25
        assert changed[y0:y1, x0:x1].mean() > 0.3                      # the item is inside its box
        assert changed.sum() <= 1.6 * changed[max(y0 - 4, 0):y1 + 4, max(x0 - 4, 0):x1 + 4].sum()


def test_sampler_draws_synthetic_negatives_as_negatives() -> None:
    photo = _photo([[360, 400, 440, 420]])
    sampler = LandmarkSampler([photo], default_config()["landmarks"], synth_p=0.0, neg_p=1.0, seed=6, hard_p=0.0,
                              synth_neg_p=1.0)
    crops = [sampler.sample() for _ in range(8)]
    assert all(label == 0.0 and weight == 0.0 for _, _, label, weight in crops)
    # a uniform grey photo gives flat crops; a pasted sign or badge does not
    assert np.median([x.std() for x, *_ in crops]) > 0.35   # random crops of this photo: ~0.14
