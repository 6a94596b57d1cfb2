"""plateveil.geometry: crop windows, crop <-> image mapping, quads."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from plateveil.geometry import (
    CropWindow,
    box_iou,
    box_to_quad,
    crop_transform,
    drop_enclosing,
    expand_box,
    is_convex_quad,
    order_quad,
    pad_quad,
    polygon_area,
    quad_to_box,
    to_crop_norm,
    to_image,
)


def rotated_rect(cx: float, cy: float, w: float, h: float, deg: float) -> np.ndarray:
    """TL, TR, BR, BL of a w x h rectangle rotated by ``deg`` (small angles keep TL top-left)."""
    a = np.deg2rad(deg)
    u, v = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
    c = np.array([cx, cy])
    return np.array([c - u * w / 2 - v * h / 2, c + u * w / 2 - v * h / 2,
                     c + u * w / 2 + v * h / 2, c - u * w / 2 + v * h / 2])


def test_expand_box_grows_each_side_and_keeps_centre():
    win = expand_box((100, 100, 200, 150), expand_x=0.1, expand_y=0.2, min_aspect=1.0, max_aspect=4.0)
    assert win.width == pytest.approx(120)
    assert win.height == pytest.approx(70)
    assert ((win.x1 + win.x2) / 2, (win.y1 + win.y2) / 2) == pytest.approx((150, 125))


def test_expand_box_clamps_flat_boxes_to_max_aspect():
    win = expand_box((0, 0, 400, 20), 0.0, 0.0, min_aspect=1.0, max_aspect=4.0)
    assert win.width == pytest.approx(400)
    assert win.height == pytest.approx(100)  # grown from 20 so that w/h == 4
    assert (win.y1, win.y2) == pytest.approx((-40, 60))  # centred, may leave the image


def test_expand_box_clamps_tall_boxes_to_min_aspect():
    win = expand_box((0, 0, 10, 100), 0.0, 0.0, min_aspect=1.0, max_aspect=4.0)
    assert win.width == pytest.approx(100)
    assert win.height == pytest.approx(100)
    assert (win.x1, win.x2) == pytest.approx((-45, 55))


def test_expand_box_survives_degenerate_box():
    win = expand_box((5, 5, 5, 5), 0.5, 0.5)
    assert win.width > 0 and win.height > 0


@pytest.mark.parametrize("point", [(210.0, 130.0), (160.5, 105.25), (333.0, 170.0)])
def test_crop_mapping_round_trip_through_warp(point):
    """A blob drawn in the image, warped into the crop with crop_transform, maps back to where it was."""
    image = np.zeros((300, 400), dtype=np.float32)
    ys, xs = np.mgrid[0:300, 0:400]
    image += np.exp(-((xs - point[0]) ** 2 + (ys - point[1]) ** 2) / (2 * 3.0 ** 2)).astype(np.float32)
    window = CropWindow(150, 100, 350, 180)
    out_w, out_h = 128, 64
    crop = cv2.warpAffine(image, crop_transform(window, out_w, out_h), (out_w, out_h), flags=cv2.INTER_LINEAR)
    cy, cx = np.mgrid[0:out_h, 0:out_w]
    total = crop.sum()
    assert total > 0
    found_crop = np.array([(crop * cx).sum() / total, (crop * cy).sum() / total])
    back = to_image(found_crop / (out_w, out_h), window)[0]
    assert back == pytest.approx(point, abs=0.6)


def test_to_crop_norm_inverts_to_image():
    window = CropWindow(-20.5, 10, 300, 90)
    pts = np.array([[0.0, 0.0], [1.0, 1.0], [0.25, 0.75]])
    assert to_crop_norm(to_image(pts, window), window) == pytest.approx(pts)
    assert to_image(pts, window)[1] == pytest.approx((300, 90))


def test_crop_transform_maps_window_corners_to_crop_corners():
    window = CropWindow(10, 20, 110, 70)
    m = crop_transform(window, 200, 100)
    corners = np.array([[10, 20, 1], [110, 70, 1]], dtype=np.float64)
    assert (corners @ m.T).ravel() == pytest.approx([0, 0, 200, 100])


def test_pad_quad_axis_aligned():
    quad = box_to_quad((100, 50, 200, 70))
    padded = pad_quad(quad, 0.1, 0.2)
    assert quad_to_box(padded) == pytest.approx((90, 46, 210, 74))


def test_pad_quad_keeps_tilt_and_scales_area():
    quad = rotated_rect(300, 200, 100, 20, 12)
    padded = pad_quad(quad, 0.1, 0.25)
    assert is_convex_quad(padded)
    assert polygon_area(padded) == pytest.approx(120 * 30, rel=1e-6)
    edge, padded_edge = quad[1] - quad[0], padded[1] - padded[0]
    assert np.arctan2(edge[1], edge[0]) == pytest.approx(np.arctan2(padded_edge[1], padded_edge[0]))
    assert padded.mean(axis=0) == pytest.approx(quad.mean(axis=0))


@pytest.mark.parametrize("deg", [-20.0, 0.0, 7.5, 30.0])
def test_order_quad_recovers_tl_tr_br_bl(deg):
    quad = rotated_rect(50, 40, 80, 24, deg)
    rng = np.random.default_rng(int(deg) + 100)
    for _ in range(5):
        shuffled = quad[rng.permutation(4)]
        assert order_quad(shuffled) == pytest.approx(quad)


def test_is_convex_quad():
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], dtype=float)
    assert is_convex_quad(square)
    assert is_convex_quad(square[::-1])  # either orientation
    assert not is_convex_quad(np.array([[0, 0], [10, 10], [10, 0], [0, 10]], dtype=float))  # bow-tie
    assert not is_convex_quad(np.array([[0, 0], [10, 0], [3, 3], [0, 10]], dtype=float))  # dart
    assert not is_convex_quad(np.array([[0, 0], [5, 0], [10, 0], [0, 10]], dtype=float))  # collinear


def test_polygon_area_and_iou():
    assert polygon_area(box_to_quad((0, 0, 10, 5))) == pytest.approx(50)
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]))
    assert iou[0] == pytest.approx([1.0, 1 / 3, 0.0])


def test_drop_enclosing_drops_a_worse_region_around_a_better_one() -> None:
    plate = box_to_quad((100, 100, 160, 115))
    bumper = box_to_quad((80, 80, 200, 160))        # holds all of the plate, 10x its area
    light = box_to_quad((97, 99, 165, 117))         # holds the plate, but only 1.36x its area
    sign = box_to_quad((300, 10, 360, 25))          # elsewhere
    assert drop_enclosing([plate, bumper, light, sign], [0.9, 0.3, 0.4, 0.2], 0.7, 1.5) == [0, 2, 3]
    # the better-scored region is never dropped for holding a worse one: a plate detected together with its
    # bumper at a higher score than the plate alone keeps both
    assert sorted(drop_enclosing([plate, bumper], [0.3, 0.9], 0.7, 1.5)) == [0, 1]
    # a big region that holds under 70% of the better one stays
    half = box_to_quad((130, 60, 260, 160))
    assert sorted(drop_enclosing([plate, half], [0.9, 0.3], 0.7, 1.5)) == [0, 1]
    assert drop_enclosing([], [], 0.7, 1.5) == []
