"""Synthetic plates: shapes, determinism, and above all that corner labels sit on the plate."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from model_training import synth
from model_training.synth import negatives, paste
from plateveil.geometry import polygon_area

MAGENTA = (255, 0, 255)

# expected width/height ranges per layout (two-line plates come in a few sizes)
ASPECTS = {"eu": (4.6, 4.8), "ru": (4.5, 4.7), "us": (1.95, 2.05), "br_mercosur": (3.0, 3.15),
           "uk_rear": (4.6, 4.8), "two_line": (1.2, 1.75), "dark": (1.95, 4.8), "black": (1.95, 4.8),
           "blue": (2.7, 4.8), "red": (1.95, 4.8), "yellow": (1.5, 4.8), "jp": (1.95, 2.05)}


def _homography(quad: np.ndarray) -> np.ndarray:
    unit = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
    return cv2.getPerspectiveTransform(unit, quad.astype(np.float32))


def _map(h: np.ndarray, uv: list[tuple[float, float]]) -> np.ndarray:
    return cv2.perspectiveTransform(np.array([uv], np.float32), h)[0]


def _pixel(img: np.ndarray, xy: np.ndarray) -> np.ndarray:
    # label coordinates are pixel edges: the pixel containing point (x, y) is (floor x, floor y)
    return img[int(np.floor(xy[1])), int(np.floor(xy[0]))].astype(int)


def _centroid(quad: np.ndarray) -> np.ndarray:
    x, y = quad[:, 0].astype(np.float64), quad[:, 1].astype(np.float64)
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    a = cross.sum() / 2
    return np.array([((x + xn) * cross).sum() / (6 * a), ((y + yn) * cross).sum() / (6 * a)])


@pytest.mark.parametrize("layout", synth.plates.ALL_LAYOUTS)
def test_every_layout_renders_at_the_requested_height(layout: str) -> None:
    rng = np.random.default_rng(3)
    for height in (24, 64):
        img, corners = synth.render_plate(rng, layout, height_px=height)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[0] == height
        lo, hi = ASPECTS[layout]
        assert lo <= img.shape[1] / height <= hi
        w = img.shape[1]
        np.testing.assert_array_equal(corners, [[0, 0], [w, 0], [w, height], [0, height]])
        assert img.std() > 15  # text and colours, not a flat fill


def test_unknown_layout_is_refused_with_the_valid_names() -> None:
    with pytest.raises(ValueError, match="two_line"):
        synth.render_plate(np.random.default_rng(0), "moon")


def test_same_seed_same_output() -> None:
    bg = np.full((240, 320, 3), 90, np.uint8)
    a = synth.synth_scene(np.random.default_rng(11), bg)
    b = synth.synth_scene(np.random.default_rng(11), bg)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    p1, c1 = synth.render_plate(np.random.default_rng(5))
    p2, c2 = synth.render_plate(np.random.default_rng(5))
    np.testing.assert_array_equal(p1, p2)
    c = synth.synth_scene(np.random.default_rng(12), bg)
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("seed", range(6))
def test_geometry_is_exact_area_and_centroid(seed: int) -> None:
    """A solid white plate on black, no photometrics: alpha mass == quad area, same centroid."""
    rng = np.random.default_rng(seed)
    img = np.zeros((300, 400, 3), np.uint8)
    quad0 = paste.random_pose_quad(rng, 4.7)
    quad0 *= rng.uniform(60, 200) / (quad0[:, 0].max() - quad0[:, 0].min())
    quad = (quad0 + rng.uniform([120, 100], [280, 200])).astype(np.float32)
    # green everywhere (the outline), red only in the top-left quadrant (the texture mapping)
    src = np.zeros((40, 188, 3), np.uint8)
    src[..., 1] = 255
    src[:20, :94, 2] = 255
    paste.composite(rng, img, src, np.full((40, 188), 255, np.uint8), quad, rect_edges=True, realism=False)
    ys, xs = np.mgrid[0:img.shape[0], 0:img.shape[1]] + 0.5  # pixel centres in edge coordinates
    quarter = _map(_homography(quad), [(0, 0), (0.5, 0), (0.5, 0.5), (0, 0.5)])
    for channel, poly in ((1, quad), (2, quarter)):
        mass = img[..., channel].astype(np.float64) / 255
        area = polygon_area(poly)
        assert abs(mass.sum() - area) / area < 0.015
        centre = np.array([(mass * xs).sum(), (mass * ys).sum()]) / mass.sum()
        np.testing.assert_allclose(centre, _centroid(poly), atol=0.06)


@pytest.mark.parametrize("seed", range(8))
def test_pasted_plate_corners_land_on_the_plate(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real rendered plates with full realism: inside the labelled quad is plate, outside is background."""
    monkeypatch.setattr(paste, "FRAME_P", 0.0)  # holders are drawn outside the plate on purpose
    rng = np.random.default_rng(100 + seed)
    bg = np.zeros((480, 640, 3), np.uint8)
    bg[:] = MAGENTA
    img, corners = synth.paste_plates(rng, bg, 1, width_range=(0.35, 0.45), jpeg=False)
    assert corners.shape == (1, 4, 2) and corners.dtype == np.float32
    quad = corners[0]
    h = _homography(quad)
    inside = _map(h, [(0.06, 0.15), (0.94, 0.15), (0.94, 0.85), (0.06, 0.85),
                      (0.5, 0.12), (0.95, 0.5), (0.5, 0.88), (0.05, 0.5)])
    for p in inside:
        assert np.abs(_pixel(img, p) - MAGENTA).max() > 25, p
    centre = quad.mean(axis=0)
    outside = [c + 9 * (c - centre) / np.linalg.norm(c - centre) for c in quad]
    for k in range(4):  # edge midpoints, pushed out along the edge normal
        a, b = quad[k], quad[(k + 1) % 4]
        e = (b - a) / np.linalg.norm(b - a)
        outside.append((a + b) / 2 + 9 * np.array([e[1], -e[0]]))
    for p in outside:
        if 0 <= p[0] < bg.shape[1] and 0 <= p[1] < bg.shape[0]:
            np.testing.assert_array_equal(_pixel(img, p), MAGENTA)
    # the changed pixels are the plate: their area matches the quad's within a blurred rim
    changed = (np.abs(img.astype(int) - MAGENTA).max(axis=2) > 60).sum()
    area = polygon_area(quad)
    assert abs(changed - area) / area < 0.12


def test_paste_plates_keeps_clear_of_given_boxes_and_each_other() -> None:
    avoid = np.array([[200, 150, 440, 330]], np.float32)
    bg = np.full((480, 640, 3), 70, np.uint8)
    for seed in range(10):
        img, corners = synth.paste_plates(np.random.default_rng(seed), bg, 4, width_range=(0.05, 0.2),
                                          avoid_boxes=avoid)
        assert 1 <= len(corners) <= 4 and img.shape == bg.shape
        boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
        for i, b in enumerate(boxes):
            assert b[2] < avoid[0, 0] or b[0] > avoid[0, 2] or b[3] < avoid[0, 1] or b[1] > avoid[0, 3]
            assert (b[:2] >= 0).all() and b[2] <= 640 and b[3] <= 480
            for o in boxes[i + 1:]:
                assert b[2] < o[0] or o[2] < b[0] or b[3] < o[1] or o[3] < b[1]


def test_no_room_gives_fewer_plates_not_an_error() -> None:
    bg = np.full((100, 100, 3), 70, np.uint8)
    img, corners = synth.paste_plates(np.random.default_rng(0), bg, 3, avoid_boxes=np.array([[0, 0, 100, 100]]))
    assert corners.shape == (0, 4, 2)
    assert img.shape == bg.shape


@pytest.mark.parametrize("kind", negatives.NEGATIVE_KINDS)
def test_every_negative_kind_renders(kind: str) -> None:
    img = synth.render_negative(np.random.default_rng(1), 48, kind)
    assert img.dtype == np.uint8 and img.shape[0] == 48 and img.shape[1] >= 8 and img.std() > 5


def test_negatives_are_pasted_but_not_labelled() -> None:
    bg = np.full((360, 640, 3), 100, np.uint8)
    avoid = np.array([[250, 150, 390, 190]], np.float32)
    out, quads = synth.paste_negatives(np.random.default_rng(2), bg, 3, avoid_boxes=avoid)
    assert out.shape == bg.shape and (np.abs(out.astype(int) - bg).max(axis=2) > 30).sum() > 100
    np.testing.assert_array_equal(bg, 100)  # input untouched
    assert quads.shape[1:] == (4, 2) and 1 <= len(quads) <= 3
    changed = np.abs(out.astype(int) - bg).max(axis=2) > 30
    inside = np.zeros_like(changed)
    for q in quads:   # what changed is where the returned corners say the non-plates are (+ a frame, blur)
        x0, y0 = np.floor(q.min(axis=0)).astype(int) - 4
        x1, y1 = np.ceil(q.max(axis=0)).astype(int) + 4
        inside[max(y0, 0):y1, max(x0, 0):x1] = True
        assert x1 - 4 <= 250 or x0 + 4 >= 390 or y1 - 4 <= 150 or y0 + 4 >= 190   # clear of the avoided box
    assert changed[~inside].sum() <= 0.02 * changed.sum()


def test_synth_scene_returns_pasted_plate_corners_only() -> None:
    bg = np.full((720, 1280, 3), 60, np.uint8)
    existing = np.array([[600, 500, 700, 530]], np.float32)
    for seed in range(5):
        img, corners = synth.synth_scene(np.random.default_rng(seed), bg, existing_boxes=existing, max_plates=3)
        assert img.shape == bg.shape and img.dtype == np.uint8
        assert corners.dtype == np.float32 and corners.ndim == 3 and 1 <= len(corners) <= 3


def test_preview_writes_a_png(tmp_path) -> None:  # type: ignore[no-untyped-def]
    real = [(np.full((200, 300, 3), 120, np.uint8), np.array([[10, 10, 60, 30]]), np.full((1, 4, 2), np.nan), "real")]
    out = synth.make_preview(tmp_path / "sheet.png", real_samples=real, n_synth=2, seed=1)
    sheet = cv2.imread(str(out))
    assert sheet is not None and sheet.shape[0] > 240 and sheet.shape[1] > 320
    plain = synth.preview_sheet([], tmp_path / "empty.png")
    assert cv2.imread(str(plain)) is not None



def test_scenes_draw_only_the_layouts_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    from model_training.synth import paste, plates

    drawn: list[str] = []
    real = plates.layout_size_mm
    monkeypatch.setattr(plates, "layout_size_mm", lambda rng, layout: drawn.append(layout) or real(rng, layout))
    rng = np.random.default_rng(0)
    for _ in range(40):
        paste.render_plate_item(layouts=("dark", "us"))(rng)
    assert set(drawn) == {"dark", "us"}
    drawn.clear()
    for _ in range(80):
        paste.render_plate_item()(rng)
    assert set(drawn) == set(synth.LAYOUTS)   # by default every layout of 2.0 (the 3.0 ones only when asked)

    asked: list[object] = []
    real_item = paste.render_plate_item
    monkeypatch.setattr(paste, "render_plate_item", lambda layouts=None: asked.append(layouts) or real_item(
        layouts=layouts))
    synth.synth_scene(rng, np.full((240, 320, 3), 90, np.uint8), layouts=("dark",))
    assert asked == [("dark",)]


def test_negatives_of_chosen_kinds_only(monkeypatch: pytest.MonkeyPatch) -> None:
    bg = np.full((360, 640, 3), 100, np.uint8)
    calls: list[str | None] = []
    real = negatives.negative_item

    def spy(rng: np.random.Generator, kind: str | None = None):  # type: ignore[no-untyped-def]
        calls.append(kind)
        return real(rng, kind)

    monkeypatch.setattr(negatives, "negative_item", spy)
    synth.paste_negatives(np.random.default_rng(3), bg, 4, kinds=("grille", "logo"))
    assert calls and set(calls) <= {"grille", "logo"}
    with pytest.raises(ValueError, match="unknown negative kind 'plate'"):
        synth.paste_negatives(np.random.default_rng(3), bg, 1, kinds=("grille", "plate"))


def test_the_3_0_layouts_differ_from_the_2_0_ones_by_colour() -> None:
    """black: light characters on a near-black plate; blue: a blue plate; yellow: a yellow one; the mean colour of
    each new layout's plates is where its name says (BGR)."""
    rng = np.random.default_rng(5)

    def mean(layout: str) -> np.ndarray:
        return np.mean([synth.render_plate(rng, layout, 40)[0].reshape(-1, 3).mean(0) for _ in range(30)], axis=0)

    b, g, r = mean("black")
    assert max(b, g, r) < 110
    b, g, r = mean("blue")
    assert b > r + 50
    b, g, r = mean("yellow")
    assert r > b + 80 and g > b + 50
    b, g, r = mean("red")
    assert r > g + 40
    assert set(synth.plates.NEW_LAYOUTS) <= set(synth.plates.ALL_LAYOUTS) and "jp" not in synth.LAYOUTS
