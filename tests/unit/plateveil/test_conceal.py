"""plateveil.conceal: every style hides the plate region and leaves the rest alone."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from plateveil.conceal import Concealer, get_concealer, style_names
from plateveil.conceal.base import polygon_mask
from plateveil.conceal.blur import BlurConcealer
from plateveil.conceal.brand import brand_plate
from plateveil.errors import UnknownStyleError

HIDING_STYLES = ["blur", "pixelate", "solid", "overlay"]


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean structural similarity of two BGR/gray uint8 images (Gaussian window, sigma 1.5)."""
    def gray(x: np.ndarray) -> np.ndarray:
        x = cv2.cvtColor(x, cv2.COLOR_BGR2GRAY) if x.ndim == 3 else x
        return x.astype(np.float64)

    x, y = gray(a), gray(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (11, 11), 1.5)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s[mask].mean() if mask is not None else s.mean())


def hf_energy(img: np.ndarray, mask: np.ndarray) -> float:
    """Mean squared Laplacian (high-frequency energy) inside ``mask``."""
    lap = cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).astype(np.float64), cv2.CV_64F)
    return float((lap[mask] ** 2).mean())


def scene(h: int = 360, w: int = 480, seed: int = 0) -> np.ndarray:
    """A textured background with a high-contrast 'plate' (white, black text) in the middle."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 2)
    cv2.rectangle(img, (150, 160), (330, 200), (255, 255, 255), -1)
    cv2.putText(img, "AB 123 CD", (158, 193), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0), 3, cv2.LINE_AA)
    return img


PLATE = np.array([[147.0, 158.0], [333.0, 155.5], [334.0, 203.0], [146.0, 204.0]])


def inside_outside(shape: tuple[int, ...], polygon: np.ndarray, band: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(pixels well inside the polygon, pixels well outside it) as boolean masks."""
    mask = polygon_mask(shape[:2], polygon)
    kernel = np.ones((2 * band + 1, 2 * band + 1), np.uint8)
    return cv2.erode(mask, kernel) == 255, cv2.dilate(mask, kernel) == 0


# ----------------------------------------------------------------------------------------------


def test_registry_lists_and_builds_every_style():
    assert set(style_names()) == {"blur", "pixelate", "solid", "overlay", "none"}
    for name in style_names():
        concealer = get_concealer(name)
        assert isinstance(concealer, Concealer)
        assert concealer.name == name


def test_unknown_style_fails_loudly_with_valid_names():
    with pytest.raises(UnknownStyleError) as info:
        get_concealer("sparkles")
    message = str(info.value)
    assert "sparkles" in message
    assert all(name in message for name in style_names())


def test_bad_style_option_is_a_value_error():
    with pytest.raises(ValueError, match="bad options"):
        get_concealer("blur", colour="red")


@pytest.mark.parametrize("style", HIDING_STYLES)
def test_style_hides_the_plate_and_leaves_the_rest(style):
    img = scene()
    original = img.copy()
    out = get_concealer(style).apply(img, [PLATE])
    assert (img == original).all(), "input must not be modified"
    assert out.shape == img.shape and out.dtype == np.uint8
    inside, outside = inside_outside(img.shape, PLATE)
    # the text's structure is gone
    assert ssim(out, img, inside) < 0.5
    # outside a small band around the polygon nothing moves
    assert np.abs(out.astype(int) - img.astype(int))[outside].max() <= 1


@pytest.mark.parametrize("style", ["blur", "solid"])
def test_smoothing_styles_remove_high_frequencies(style):
    img = scene()
    out = get_concealer(style).apply(img, [PLATE])
    inside, _ = inside_outside(img.shape, PLATE)
    assert hf_energy(out, inside) < 0.05 * hf_energy(img, inside)


def test_pixelate_makes_blocks_bigger_than_strokes():
    img = scene()
    concealer = get_concealer("pixelate")
    assert concealer.block_size(PLATE) >= 12  # strokes are 3 px; characters ~ 25 px
    out = concealer.apply(img, [PLATE])
    inside, _ = inside_outside(img.shape, PLATE, band=4)
    colours = {tuple(c) for c in out[inside].reshape(-1, 3)}
    assert len(colours) < inside.sum() / 50  # a few flat blocks, not text


def test_solid_fills_with_the_colour():
    out = get_concealer("solid", color="#ff8000").apply(scene(), [PLATE])
    inside, _ = inside_outside(out.shape, PLATE)
    assert (out[inside] == (0, 128, 255)).all()
    with pytest.raises(ValueError):
        get_concealer("solid", color="orange")


def test_blur_strength_scales_with_plate_size():
    small = PLATE
    big = (PLATE - PLATE.mean(axis=0)) * 4 + PLATE.mean(axis=0)
    blur = BlurConcealer()
    assert blur.sigma(big) == pytest.approx(4 * blur.sigma(small), rel=0.01)


def test_blur_hides_text_on_a_big_plate():
    img = np.full((900, 1200, 3), 90, np.uint8)
    cv2.rectangle(img, (200, 300), (1000, 500), (255, 255, 255), -1)
    cv2.putText(img, "AB 123", (240, 460), cv2.FONT_HERSHEY_SIMPLEX, 5.5, (0, 0, 0), 14, cv2.LINE_AA)
    plate = np.array([[195.0, 295.0], [1005.0, 295.0], [1005.0, 505.0], [195.0, 505.0]])
    out = get_concealer("blur").apply(img, [plate])
    inside, outside = inside_outside(img.shape, plate)
    assert hf_energy(out, inside) < 0.01 * hf_energy(img, inside)
    # compare structure at the scale of the letters (SSIM's window is 11 px)
    def shrink(x: np.ndarray) -> np.ndarray:
        return cv2.resize(x, None, fx=0.2, fy=0.2, interpolation=cv2.INTER_AREA)

    small_inside = cv2.resize(inside.astype(np.uint8), None, fx=0.2, fy=0.2, interpolation=cv2.INTER_NEAREST) > 0
    assert ssim(shrink(out), shrink(img), small_inside) < 0.5
    assert np.abs(out.astype(int) - img.astype(int))[outside].max() <= 1


def test_overlay_matches_luminance_and_shows_the_brand():
    img = scene()
    dark = img.copy()
    dark[150:210, 140:340] = (dark[150:210, 140:340] * 0.3).astype(np.uint8)  # a plate in shadow
    for source in (img, dark):
        out = get_concealer("overlay").apply(source, [PLATE])
        inside, _ = inside_outside(source.shape, PLATE)
        before = cv2.cvtColor(source, cv2.COLOR_BGR2GRAY)[inside].astype(float)
        after = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY)[inside].astype(float)
        assert abs(after.mean() - before.mean()) < 12
        assert after.std() > 10  # the brand text is there, not a flat patch


def test_none_changes_nothing():
    img = scene()
    out = get_concealer("none").apply(img, [PLATE])
    assert (out == img).all()


@pytest.mark.parametrize("style", HIDING_STYLES)
def test_polygons_partly_outside_are_clipped(style):
    img = scene()
    corner = np.array([[-40.0, -20.0], [60.0, -25.0], [62.0, 30.0], [-38.0, 28.0]])
    out = get_concealer(style).apply(img, [corner])
    inside, outside = inside_outside(img.shape, corner)
    assert inside.sum() > 500
    assert ssim(out, img, inside) < 0.9 or style == "solid"
    assert np.abs(out.astype(int) - img.astype(int))[outside].max() <= 1
    assert not (out[inside] == img[inside]).all()


@pytest.mark.parametrize("style", HIDING_STYLES)
def test_degenerate_and_outside_polygons_change_nothing(style):
    img = scene()
    polygons = [
        np.array([[600.0, 500.0], [700.0, 500.0], [700.0, 560.0], [600.0, 560.0]]),  # fully outside
        np.array([[10.0, 10.0], [50.0, 10.0], [90.0, 10.0], [20.0, 10.0]]),  # zero area
        np.array([[np.nan, 1.0], [5.0, 1.0], [5.0, 5.0], [1.0, 5.0]]),  # not finite
        np.array([[1.0, 1.0], [2.0, 2.0]]),  # not a polygon
    ]
    out = get_concealer(style).apply(img, polygons)
    assert (out == img).all()


def test_overlay_accepts_non_quad_polygons_and_several_plates():
    img = scene()
    hexagon = np.array([[60.0, 60.0], [120.0, 50.0], [150.0, 70.0], [120.0, 95.0], [60.0, 95.0], [45.0, 78.0]])
    out = get_concealer("overlay").apply(img, [PLATE, hexagon])
    for poly in (PLATE, hexagon):
        inside, _ = inside_outside(img.shape, poly)
        assert ssim(out, img, inside) < 0.6


def test_antialiased_mask_has_soft_edges():
    mask = polygon_mask((40, 60), np.array([[10.3, 5.0], [50.0, 8.0], [49.0, 30.0], [11.0, 33.0]]))
    assert mask.max() == 255 and mask.min() == 0
    assert ((mask > 0) & (mask < 255)).any()


def test_brand_plate_is_drawn_by_code():
    plate = brand_plate()
    assert plate.shape == (112, 520, 3) and plate.dtype == np.uint8
    assert not plate.flags.writeable
    assert plate.mean() > 180  # mostly white
    assert (plate.min(axis=2) < 100).mean() > 0.05  # with dark text and border
