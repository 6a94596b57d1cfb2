"""Evaluation metrics on hand-made cases."""

import numpy as np
import pytest

from model_training.evaluate import near_box, score_image
from plateveil.geometry import box_to_quad

SHAPE = (200, 300)
BOX = np.array([[100.0, 100.0, 180.0, 120.0]])


def test_polygon_exactly_on_the_box_covers_it_with_no_excess():
    cov, spurious, _, excess, excess_tight, area = score_image(SHAPE, BOX, [box_to_quad(BOX[0])])
    assert cov[0] == pytest.approx(1.0, abs=0.02)
    assert spurious == 0
    assert excess == 0
    assert excess_tight == pytest.approx(0, abs=0.03 * area)
    assert area == pytest.approx(81 * 21, rel=0.01)  # boundary pixels included


def test_polygon_over_half_the_box_covers_half():
    half = box_to_quad((100.0, 100.0, 140.0, 120.0))
    cov, spurious, *_ = score_image(SHAPE, BOX, [half])
    assert cov[0] == pytest.approx(0.5, abs=0.03)
    assert spurious == 0


def test_no_polygon_covers_nothing():
    cov, spurious, _, excess, _, _ = score_image(SHAPE, BOX, [])
    assert cov[0] == 0
    assert spurious == 0 and excess == 0


def test_far_away_polygon_is_spurious_and_counts_as_excess():
    far = box_to_quad((10.0, 10.0, 50.0, 30.0))
    cov, spurious, sp_area, excess, _, area = score_image(SHAPE, BOX, [box_to_quad(BOX[0]), far])
    assert cov[0] == pytest.approx(1.0, abs=0.02)
    assert spurious == 1
    assert sp_area == pytest.approx(41 * 21, rel=0.01)
    assert excess / area == pytest.approx(41 * 21 / (81 * 21), rel=0.01)


def test_margin_inside_the_near_region_is_not_excess_but_is_tight_excess():
    padded = box_to_quad((95.0, 95.0, 185.0, 125.0))
    cov, spurious, _, excess, excess_tight, _ = score_image(SHAPE, BOX, [padded])
    assert cov[0] == pytest.approx(1.0, abs=0.02)
    assert spurious == 0 and excess == 0
    assert excess_tight > 0


def test_polygon_mostly_outside_the_near_region_is_spurious():
    # 5% of its area inside the near region (box padded by w/4 and h/2)
    nb = near_box(BOX[0])
    poly = box_to_quad((nb[2] - 5.0, 100.0, nb[2] + 95.0, 120.0))
    _, spurious, *_ = score_image(SHAPE, BOX, [poly])
    assert spurious == 1
