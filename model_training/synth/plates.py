"""Flat, frontal synthetic licence plates with their exact corners.

Every plate is drawn on a canvas whose outer edge IS the plate's outer boundary, so its corners
are ``(0, 0), (W, 0), (W, H), (0, H)`` in pixel-edge coordinates (pixel ``(i, j)`` covers
``[i, i+1) x [j, j+1)``). Real plates have slightly rounded corners; the returned alpha mask
rounds them, the corner labels stay at the rectangle's corners (where the straight edges meet),
as an annotator would place them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import cv2
import numpy as np

from model_training.synth import draw, fonts

T = TypeVar("T")

LAYOUTS = ("eu", "ru", "us", "br_mercosur", "uk_rear", "two_line", "dark")
# the 3.0 layouts (issue 35: the plates 2.0.0 missed in listing photos): white characters on black, blue and red
# plates, yellow plates (India, Pakistan, NL, UK rear, commercial), Japanese two-row plates. Kept apart from
# ``LAYOUTS`` (what a stage with ``layouts=None`` draws), so the 1.10.0 and 2.0 stages draw what they drew
NEW_LAYOUTS = ("black", "blue", "red", "yellow", "jp")
ALL_LAYOUTS = LAYOUTS + NEW_LAYOUTS

# physical sizes in mm (width, height) per layout; one is drawn where a layout comes in several
_SIZES_MM = {
    "eu": ((520.0, 110.0),),
    "ru": ((520.0, 112.0),),
    "us": ((305.0, 152.0),),
    "br_mercosur": ((400.0, 130.0),),
    "uk_rear": ((520.0, 111.0),),
    "two_line": ((280.0, 200.0), (290.0, 170.0), (340.0, 220.0), (250.0, 200.0), (300.0, 210.0)),
    "dark": ((520.0, 111.0), (520.0, 120.0), (305.0, 152.0), (372.0, 135.0)),
    "black": ((520.0, 111.0), (520.0, 120.0), (305.0, 152.0), (372.0, 135.0), (440.0, 140.0), (330.0, 165.0)),
    "blue": ((440.0, 140.0), (520.0, 110.0), (372.0, 135.0)),
    "red": ((520.0, 110.0), (305.0, 152.0), (440.0, 140.0)),
    "yellow": ((520.0, 111.0), (440.0, 140.0), (372.0, 135.0), (305.0, 152.0), (340.0, 220.0)),
    "jp": ((330.0, 165.0),),
}

_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"
_RU_LETTERS = "ABEKMHOPCTYX"
_DIGITS = "0123456789"

BLACK = (20, 20, 20)
WHITE = (245, 245, 245)
EU_BLUE = (153, 51, 0)  # BGR of #003399
EU_YELLOW = (0, 204, 255)
UK_YELLOW = (23, 209, 247)
RED = (40, 30, 200)
DARK_BLUE = (110, 40, 20)
GREEN = (60, 120, 20)


def _fill(rng: np.random.Generator, pattern: str, letters: str = _LETTERS) -> str:
    out = []
    for ch in pattern:
        if ch == "L":
            out.append(letters[rng.integers(len(letters))])
        elif ch == "D":
            out.append(_DIGITS[rng.integers(10)])
        else:
            out.append(ch)
    return "".join(out)


def _pick(rng: np.random.Generator, seq: Sequence[T]) -> T:
    return seq[int(rng.integers(len(seq)))]


def _jitter(rng: np.random.Generator, colour: tuple[int, int, int], amount: float = 10) -> tuple[int, int, int]:
    n = rng.normal(0, amount, 3)
    return tuple(min(max(int(c + d), 0), 255) for c, d in zip(colour, n, strict=True))  # type: ignore[return-value]


def _off_white(rng: np.random.Generator) -> tuple[int, int, int]:
    v = float(rng.uniform(215, 252))
    warm = float(rng.uniform(-8, 4))
    return (min(max(int(v + warm), 0), 255), int(v), min(max(int(v - warm * 0.3), 0), 255))


def _bolts(rng: np.random.Generator, img: np.ndarray, y: float, xs: tuple[float, float]) -> None:
    h = img.shape[0]
    r = h * rng.uniform(0.035, 0.06)
    metal = rng.random() < 0.6
    for x in xs:
        if metal:
            g = int(rng.uniform(120, 200))
            draw.circle(img, (x, y), r, (g, g, g))
            draw.circle(img, (x, y), r, (g // 2, g // 2, g // 2), max(int(r * 0.25), 1))
            draw.circle(img, (x - r * 0.25, y - r * 0.25), r * 0.3, (235, 235, 235))
        else:
            draw.circle(img, (x, y), r, (70, 70, 70), max(int(r * 0.3), 1))


def _border(rng: np.random.Generator, img: np.ndarray, colour: tuple[int, int, int], frac: float) -> None:
    h, w = img.shape[:2]
    inset = h * rng.uniform(0.015, 0.04)
    t = max(int(round(h * frac)), 1)
    draw.rect(img, (inset, inset, w - inset, h - inset), colour, t)


def _main_text(rng: np.random.Generator, img: np.ndarray, text: str, box: tuple[float, float, float, float],
               colour: tuple[int, int, int], font: str | None = None) -> None:
    font = font or _pick(rng, fonts.PLATE_FONTS)
    x1, y1, x2, y2 = box
    # sometimes the text does not fill the full width (fewer characters / wider spacing)
    shrink = (x2 - x1) * rng.uniform(0.0, 0.08)
    draw.text_box(img, text, (x1 + shrink, y1, x2 - shrink, y2), colour, font)


def _eu(rng: np.random.Generator, h: int, w: int, s: float) -> np.ndarray:
    country, pattern, bg, fg = _pick(rng, (
        ("D", "LL LL DDDD", None, BLACK), ("D", "L L DDD", None, BLACK),
        ("F", "LL-DDD-LL", None, BLACK), ("I", "LL DDDLL", None, BLACK),
        ("RO", "L DD LLL", None, BLACK), ("RO", "LL DD LLL", None, BLACK),
        ("NL", "LL-DDD-L", "yellow", BLACK), ("NL", "D-LLL-DD", "yellow", BLACK),
        ("PL", "LL DDDDD", None, BLACK), ("PL", "LLL DDLL", None, BLACK),
        ("E", "DDDD LLL", None, BLACK), ("B", "D-LLL-DDD", None, (40, 20, 160)),
        ("CZ", "DLD DDDD", None, BLACK), ("A", "L DDDD L", None, BLACK),
        ("H", "LLL-DDD", None, BLACK), ("BG", "LL DDDD LL", None, BLACK),
        ("L", "LL DDDD", "yellow", BLACK), ("P", "LL-DD-LL", None, BLACK),
    ))
    bgc = _jitter(rng, EU_YELLOW, 8) if bg == "yellow" else _off_white(rng)
    img = draw.canvas(h, w, bgc)
    band_w = 40 * s
    img[:, : int(round(band_w))] = _jitter(rng, EU_BLUE, 8)
    # ring of stars and the country code on the band
    cx, cy, rr = band_w / 2, h * 0.3, h * 0.17
    for k in range(12):
        a = 2 * np.pi * k / 12
        draw.circle(img, (cx + rr * np.cos(a), cy + rr * np.sin(a)), max(h * 0.022, 0.6), EU_YELLOW)
    draw.text_box(img, country, (band_w * 0.15, h * 0.58, band_w * 0.85, h * 0.86), WHITE, fonts.SANS_BOLD,
                  keep_aspect=True)
    if rng.random() < 0.8:
        _border(rng, img, BLACK, 0.025)
    if rng.random() < 0.5:  # drawn first: the characters cover them, as on a real plate's gaps
        _bolts(rng, img, h * 0.5, (w * rng.uniform(0.28, 0.36), w * rng.uniform(0.72, 0.82)))
    text = _fill(rng, pattern)
    _main_text(rng, img, text, (band_w + 16 * s, h * rng.uniform(0.14, 0.2), w - 14 * s, h * rng.uniform(0.8, 0.86)), fg)
    return img


def _ru(rng: np.random.Generator, h: int, w: int, s: float) -> np.ndarray:
    img = draw.canvas(h, w, _off_white(rng))
    t = max(int(round(h * 0.035)), 1)
    draw.rect(img, (t * 0.5, t * 0.5, w - t * 0.5, h - t * 0.5), BLACK, t)
    split = w * 0.75
    draw.rect(img, (split - t / 2, 0, split + t / 2, h), BLACK)
    if rng.random() < 0.4:
        _bolts(rng, img, h * 0.5, (w * 0.2, w * 0.6))
    font = fonts.SANS_BOLD if rng.random() < 0.6 else fonts.MONO_BOLD
    l1, d, l2 = _fill(rng, "L", _RU_LETTERS), _fill(rng, "DDD"), _fill(rng, "LL", _RU_LETTERS)
    # letters are smaller than digits on Russian plates
    x0, x_end = 24 * s, split - 14 * s
    span = x_end - x0
    draw.text_box(img, l1, (x0, h * 0.30, x0 + span * 0.15, h * 0.84), BLACK, font)
    draw.text_box(img, d, (x0 + span * 0.2, h * 0.13, x0 + span * 0.66, h * 0.84), BLACK, font)
    draw.text_box(img, l2, (x0 + span * 0.70, h * 0.30, x_end, h * 0.84), BLACK, font)
    region = _fill(rng, "DD" if rng.random() < 0.6 else "DDD")
    draw.text_box(img, region, (split + 10 * s, h * 0.1, w - 10 * s, h * 0.6), BLACK, font, keep_aspect=True)
    fx1, fx2 = w - 50 * s, w - 12 * s
    draw.text_box(img, "RUS", (split + 10 * s, h * 0.68, fx1 - 4 * s, h * 0.86), BLACK, fonts.SANS_BOLD,
                  keep_aspect=True)
    fy1, fy2 = h * 0.68, h * 0.86
    third = (fy2 - fy1) / 3
    draw.rect(img, (fx1, fy1, fx2, fy1 + third), (245, 245, 245))
    draw.rect(img, (fx1, fy1 + third, fx2, fy1 + 2 * third), (160, 60, 0))
    draw.rect(img, (fx1, fy1 + 2 * third, fx2, fy2), (30, 30, 200))
    draw.rect(img, (fx1, fy1, fx2, fy2), (90, 90, 90), 1)
    return img


_US_STATES = (
    ("CALIFORNIA", RED, "white"), ("TEXAS", DARK_BLUE, "white"), ("FLORIDA", GREEN, "orange"),
    ("NEW YORK", DARK_BLUE, "yellow"), ("OHIO", RED, "white"), ("ARIZONA", (40, 80, 160), "sky"),
    ("NEVADA", DARK_BLUE, "sky"), ("OREGON", GREEN, "white"), ("GEORGIA", RED, "peach"),
    ("ILLINOIS", DARK_BLUE, "white"), ("MICHIGAN", (30, 30, 30), "white"), ("VIRGINIA", DARK_BLUE, "white"),
    ("COLORADO", GREEN, "green"), ("UTAH", (40, 60, 130), "sky"), ("WASHINGTON", DARK_BLUE, "sky"),
    ("PENNSYLVANIA", DARK_BLUE, "yellow"), ("NEW JERSEY", (30, 30, 30), "cream"), ("MAINE", GREEN, "white"),
)
_US_SLOGANS = ("DMV.CA.GOV", "THE LONE STAR STATE", "SUNSHINE STATE", "EXCELSIOR", "LAND OF LINCOLN",
               "PURE MICHIGAN", "GRAND CANYON STATE", "KEYSTONE STATE", "GARDEN STATE", "EVERGREEN STATE",
               "VACATIONLAND", "BIRTHPLACE OF AVIATION", "")
_US_BG = {
    "white": ((248, 248, 248), (232, 232, 232)), "yellow": ((120, 220, 250), (60, 190, 240)),
    "orange": ((230, 240, 250), (140, 200, 250)), "sky": ((250, 225, 190), (235, 240, 245)),
    "peach": ((200, 225, 250), (240, 240, 245)), "green": ((230, 245, 235), (120, 170, 60)),
    "cream": ((200, 235, 245), (180, 225, 240)),
}


def _us(rng: np.random.Generator, h: int, w: int, s: float) -> np.ndarray:
    state, colour, bg = _pick(rng, _US_STATES)
    top, bottom = _US_BG[bg]
    img = draw.vertical_gradient(h, w, _jitter(rng, top, 6), _jitter(rng, bottom, 6))
    if rng.random() < 0.5:  # scenic band / stripes
        band_y = h * rng.uniform(0.55, 0.75)
        band_c = _jitter(rng, _pick(rng, ((200, 160, 90), (90, 160, 90), (80, 140, 220), (180, 120, 160))), 20)
        draw.rect(img, (0, band_y, w, band_y + h * rng.uniform(0.05, 0.2)), band_c)
    name_font = _pick(rng, (fonts.SERIF_BOLD, fonts.SANS_OBLIQUE, fonts.SANS_BOLD))
    draw.text_box(img, state, (w * 0.2, h * 0.05, w * 0.8, h * 0.22), _jitter(rng, colour, 15), name_font,
                  keep_aspect=True)
    pattern = _pick(rng, ("DLLLDDD", "LLL-DDDD", "LLL DDDD", "DDD LLL", "LLL-DDD", "DLL DDD", "LLL DDD"))
    text_c = _pick(rng, (DARK_BLUE, BLACK, RED, (30, 90, 20), (90, 40, 20)))
    _main_text(rng, img, _fill(rng, pattern), (w * 0.08, h * 0.3, w * 0.92, h * 0.78), text_c)
    slogan = _pick(rng, _US_SLOGANS)
    draw.text_box(img, slogan, (w * 0.2, h * 0.83, w * 0.8, h * 0.95), _jitter(rng, colour, 20), fonts.SANS_BOLD,
                  keep_aspect=True)
    if rng.random() < 0.6:  # registration stickers in the top corners
        sc = _pick(rng, ((40, 180, 240), (60, 60, 220), (200, 120, 40), (60, 200, 60)))
        draw.rect(img, (w * 0.04, h * 0.05, w * 0.15, h * 0.2), sc)
        if rng.random() < 0.5:
            draw.rect(img, (w * 0.85, h * 0.05, w * 0.96, h * 0.2), _jitter(rng, sc, 40))
    if rng.random() < 0.5:
        _border(rng, img, _jitter(rng, colour, 10), 0.02)
    _bolts(rng, img, h * rng.uniform(0.12, 0.18), (w * 0.25, w * 0.75))
    return img


def _br(rng: np.random.Generator, h: int, w: int, s: float) -> np.ndarray:
    img = draw.canvas(h, w, _off_white(rng))
    band_h = 30 * s
    draw.rect(img, (0, 0, w, band_h), _jitter(rng, (160, 60, 0), 8))
    draw.text_box(img, "BRASIL", (w * 0.36, band_h * 0.18, w * 0.64, band_h * 0.85), WHITE, fonts.SANS_BOLD,
                  keep_aspect=True)
    # Mercosur emblem (left) and Brazilian flag (right) on the band
    draw.circle(img, (band_h * 0.75, band_h * 0.5), band_h * 0.3, (230, 230, 230), max(int(band_h * 0.06), 1))
    fx1, fx2 = w - band_h * 1.6, w - band_h * 0.3
    draw.rect(img, (fx1, band_h * 0.2, fx2, band_h * 0.8), (60, 150, 0))
    pts = np.array([[(fx1 + fx2) / 2, band_h * 0.24], [fx2 - 2, band_h * 0.5], [(fx1 + fx2) / 2, band_h * 0.76],
                    [fx1 + 2, band_h * 0.5]], np.int32)
    cv2.fillConvexPoly(img, pts, (0, 210, 250), cv2.LINE_AA)
    draw.circle(img, ((fx1 + fx2) / 2, band_h * 0.5), band_h * 0.14, (130, 40, 0))
    t = max(int(round(h * 0.025)), 1)
    draw.rect(img, (0, 0, w, h), (40, 40, 40), t)
    text = _fill(rng, "LLLDLDD")
    _main_text(rng, img, text, (w * 0.06, band_h + h * 0.12, w * 0.94, h * 0.88), BLACK, fonts.MONO_BOLD)
    if rng.random() < 0.5:
        draw.text_box(img, "BR", (w * 0.02, h * 0.72, w * 0.07, h * 0.85), BLACK, fonts.SANS_BOLD, keep_aspect=True)
    return img


def _uk(rng: np.random.Generator, h: int, w: int, s: float) -> np.ndarray:
    img = draw.canvas(h, w, _jitter(rng, UK_YELLOW, 8))
    x0 = 12 * s
    if rng.random() < 0.5:
        band_w = 45 * s
        img[:, : int(round(band_w))] = _jitter(rng, EU_BLUE if rng.random() < 0.5 else (36, 100, 0), 8)
        draw.text_box(img, _pick(rng, ("UK", "GB")), (band_w * 0.15, h * 0.6, band_w * 0.85, h * 0.85), WHITE,
                      fonts.SANS_BOLD, keep_aspect=True)
        x0 = band_w + 10 * s
    if rng.random() < 0.4:
        _border(rng, img, BLACK, 0.02)
    text = _fill(rng, "LLDD LLL")
    _main_text(rng, img, text, (x0 + 4 * s, h * 0.15, w - 14 * s, h * 0.85), BLACK)
    if rng.random() < 0.4:  # dealer line under the text
        draw.text_box(img, _pick(rng, ("AUTO CENTRE LTD", "MOTORS", "CAR SALES")), (w * 0.35, h * 0.88, w * 0.65, h * 0.97),
                      (50, 50, 50), fonts.SANS, keep_aspect=True)
    return img


def _two_line(rng: np.random.Generator, h: int, w: int, s: float) -> np.ndarray:
    bg, fg = _pick(rng, ((None, BLACK), (None, BLACK), (UK_YELLOW, BLACK), ((25, 25, 25), WHITE),
                         ((40, 110, 30), WHITE), ((150, 60, 10), WHITE), (None, (40, 20, 160))))
    img = draw.canvas(h, w, _jitter(rng, bg, 8) if bg else _off_white(rng))
    if rng.random() < 0.8:
        _border(rng, img, fg, 0.03)
    top, bottom = _pick(rng, (("LL DD", "DDDD"), ("LLL", "DDDD"), ("DD LL", "DDD LL"), ("LL", "DDD LL"),
                              ("DDDD", "LL"), ("L DDD", "LL DD"), ("LLDD", "LLL")))
    ty2 = h * rng.uniform(0.4, 0.48)
    draw.text_box(img, _fill(rng, top), (w * 0.2, h * 0.1, w * 0.8, ty2), fg, _pick(rng, fonts.PLATE_FONTS))
    _main_text(rng, img, _fill(rng, bottom), (w * 0.08, ty2 + h * 0.07, w * 0.92, h * 0.9), fg)
    if rng.random() < 0.5:
        _bolts(rng, img, h * rng.uniform(0.07, 0.12) + h * 0.04, (w * 0.12, w * 0.88))
    return img


# (plate, characters), BGR: black with white, silver or yellow (Singapore, Malaysia, classic black-and-silver issues,
# US legacy plates), dark blue, green (electric cars), maroon
_DARK_COLOURS = (((22, 22, 22), (240, 240, 240)), ((22, 22, 22), (195, 195, 195)), ((30, 30, 30), (60, 200, 240)),
                 ((110, 40, 20), (240, 240, 240)), ((40, 95, 25), (240, 240, 240)), ((35, 30, 100), (230, 230, 230)))


def _dark(rng: np.random.Generator, h: int, w: int, s: float) -> np.ndarray:
    """Light characters on a dark plate, one line, some with a small line of text under them."""
    bg, fg = _pick(rng, _DARK_COLOURS)
    fg = _jitter(rng, fg, 8)
    img = draw.canvas(h, w, _jitter(rng, bg, 6))
    if rng.random() < 0.6:
        _border(rng, img, fg, 0.025)
    if rng.random() < 0.4:
        _bolts(rng, img, h * 0.5, (w * rng.uniform(0.25, 0.35), w * rng.uniform(0.65, 0.75)))
    pattern = _pick(rng, ("LLL DDDDL", "LLL DDDD", "LL DDDD L", "L DDD LLL", "DDD LLL", "LLDD LLL", "LLL DDD",
                          "DLLL DDD"))
    y2 = h * rng.uniform(0.8, 0.86)
    if w / h < 3 and rng.random() < 0.6:   # a US-sized plate: the issuer's name under the characters
        y2 = h * 0.72
        draw.text_box(img, _pick(rng, ("CALIFORNIA", "NEVADA", "TEXAS", "CLASSIC", "COLLECTOR", "ELECTRIC")),
                      (w * 0.25, h * 0.78, w * 0.75, h * 0.92), fg, fonts.SANS_BOLD, keep_aspect=True)
    _main_text(rng, img, _fill(rng, pattern), (w * 0.06, h * rng.uniform(0.12, 0.2), w * 0.94, y2), fg)
    return img


def _one_line(rng: np.random.Generator, img: np.ndarray, fg: tuple[int, int, int], patterns: Sequence[str],
              band: str | None = None, caption: Sequence[str] = ()) -> np.ndarray:
    """Characters of one of ``patterns`` across ``img``; optionally a country band on the left (``band``: its
    code, drawn on blue) and a small caption line above or under the characters (a province, a dealer)."""
    h, w = img.shape[:2]
    s = h / 110.0
    x0 = w * 0.05
    if band is not None:
        band_w = w * rng.uniform(0.07, 0.1)
        img[:, : int(round(band_w))] = _jitter(rng, EU_BLUE if rng.random() < 0.7 else (36, 100, 0), 8)
        draw.text_box(img, band, (band_w * 0.12, h * 0.58, band_w * 0.88, h * 0.86), WHITE, fonts.SANS_BOLD,
                      keep_aspect=True)
        x0 = band_w + 8 * s
    if rng.random() < 0.6:
        _border(rng, img, fg, 0.025)
    if rng.random() < 0.4:
        _bolts(rng, img, h * 0.5, (w * rng.uniform(0.25, 0.35), w * rng.uniform(0.65, 0.75)))
    y1, y2 = h * rng.uniform(0.12, 0.2), h * rng.uniform(0.8, 0.88)
    if caption and rng.random() < 0.6:
        line = _pick(rng, caption)
        if rng.random() < 0.5:   # above the characters (a province), else under them
            draw.text_box(img, line, (w * 0.3, h * 0.06, w * 0.7, h * 0.24), fg, fonts.SANS_BOLD, keep_aspect=True)
            y1 = h * 0.27
        else:
            draw.text_box(img, line, (w * 0.3, h * 0.76, w * 0.7, h * 0.93), fg, fonts.SANS_BOLD, keep_aspect=True)
            y2 = h * 0.72
    _main_text(rng, img, _fill(rng, _pick(rng, patterns)), (x0, y1, w * 0.95, y2), fg)
    return img


_WORLD_PATTERNS = ("LLL DDDD", "LL DD LL DDDD", "LLL-DDD", "LL DDDD L", "LLDD LLL", "L DDD LL", "DDD LLL",
                   "LL-DDDD", "LLL DDD", "LL DDD LL", "DDDD LL", "LL DD LLL")


def _black(rng: np.random.Generator, h: int, w: int, s: float) -> np.ndarray:
    """White (or silver) characters on a black plate: UK classic, Malaysia, Singapore, Pakistani and Indian
    rental plates, US black issues; a dealer or province line on some."""
    fg = _jitter(rng, _pick(rng, (WHITE, WHITE, (200, 200, 200), (210, 225, 230))), 8)
    img = draw.canvas(h, w, _jitter(rng, (18, 18, 18), 5))
    return _one_line(rng, img, fg, _WORLD_PATTERNS + ("WDD LLL", "VLL DDDD", "SLL DDDD L"),
                     caption=("PUNJAB", "SINDH", "ISLAMABAD", "MALAYSIA", "CLASSIC", "CALIFORNIA", "MOTORS"))


def _blue(rng: np.random.Generator, h: int, w: int, s: float) -> np.ndarray:
    """White characters on blue (Chinese private cars, Korean and Vietnamese issues, diplomatic plates),
    sometimes a white frame line; one in four with dark characters on light blue."""
    if rng.random() < 0.75:
        bg, fg = _jitter(rng, _pick(rng, ((170, 70, 10), (140, 50, 0), (190, 100, 30))), 10), _jitter(rng, WHITE, 6)
    else:
        bg, fg = _jitter(rng, (235, 200, 150), 10), _jitter(rng, (60, 30, 10), 8)
    img = draw.canvas(h, w, bg)
    if rng.random() < 0.5:   # the Chinese plate's inner white line
        t = max(int(round(h * 0.03)), 1)
        draw.rect(img, (h * 0.05, h * 0.05, w - h * 0.05, h * 0.95), fg, t)
    return _one_line(rng, img, fg, ("L LDDDD", "LL DDDLL", "DDL DDDD", "LL D DDDD", "CD DDD", "LDD DDD"))


def _red(rng: np.random.Generator, h: int, w: int, s: float) -> np.ndarray:
    """White characters on red (temporary, trade, Nepali and some diplomatic plates), or red characters on white
    (Belgium, Swiss and trade plates)."""
    if rng.random() < 0.6:
        bg, fg = _jitter(rng, (35, 35, 185), 12), _jitter(rng, WHITE, 6)
    else:
        bg, fg = _off_white(rng), _jitter(rng, (40, 20, 170), 10)
    img = draw.canvas(h, w, bg)
    band = "B" if rng.random() < 0.3 and w / h > 3.5 else None
    return _one_line(rng, img, fg, _WORLD_PATTERNS + ("D-LLL-DDD", "DDDD TEMP"), band=band,
                     caption=("TEMPORARY", "TRADE", "EXPIRES 12 26"))


def _yellow(rng: np.random.Generator, h: int, w: int, s: float) -> np.ndarray:
    """Black characters on yellow: India (commercial, with the IND band), Pakistan (Sindh), the Netherlands,
    Luxembourg, Israel, UK rear; the 340x220 size draws two lines (commercial and Chinese large vehicles)."""
    img = draw.canvas(h, w, _jitter(rng, _pick(rng, (EU_YELLOW, UK_YELLOW, (10, 190, 240))), 8))
    fg = _jitter(rng, BLACK, 4)
    if w / h < 1.8:   # two lines
        if rng.random() < 0.8:
            _border(rng, img, fg, 0.03)
        ty2 = h * rng.uniform(0.4, 0.46)
        draw.text_box(img, _fill(rng, _pick(rng, ("LL DD", "L LD", "LLL"))), (w * 0.2, h * 0.1, w * 0.8, ty2), fg,
                      _pick(rng, fonts.PLATE_FONTS))
        _main_text(rng, img, _fill(rng, _pick(rng, ("DDDD", "LL DDDD", "DDDDD"))),
                   (w * 0.08, ty2 + h * 0.07, w * 0.92, h * 0.9), fg)
        return img
    band = _pick(rng, ("IND", "NL", "L", None, None)) if w / h > 3 else None
    return _one_line(rng, img, fg, _WORLD_PATTERNS + ("LL DD LL DDDD", "LLL-DDDD", "DD-LLL-D", "DDD-DD-DDD"),
                     band=band, caption=("SINDH", "KARACHI", "TAXI"))


def _glyph_jp(rng: np.random.Generator, img: np.ndarray, box: tuple[float, float, float, float],
              colour: tuple[int, int, int], strokes: int) -> None:
    """A stand-in for a kanji or kana character (no CJK font is assumed): ``strokes`` straight and bent strokes
    in ``box``; at the sizes plates are seen at, it has the texture of one."""
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    t = max(int(round(min(bw, bh) * rng.uniform(0.08, 0.13))), 1)
    for _ in range(strokes):
        n = int(rng.integers(2, 4))
        pts = np.stack([x1 + rng.uniform(0.05, 0.95, n) * bw, y1 + rng.uniform(0.05, 0.95, n) * bh], axis=1)
        if rng.random() < 0.6:   # mostly horizontal or vertical strokes, as in the real characters
            if rng.random() < 0.5:
                pts[:, 1] = pts[0, 1]
            else:
                pts[:, 0] = pts[0, 0]
        cv2.polylines(img, [np.round(pts * 4).astype(np.int32)], False, colour, t, cv2.LINE_AA, shift=2)


_JP_COLOURS = (((None, (40, 90, 20)), 0.55), (((40, 100, 20), WHITE), 0.15), ((EU_YELLOW, BLACK), 0.2),
               ((BLACK, EU_YELLOW), 0.1))


def _jp(rng: np.random.Generator, h: int, w: int, s: float) -> np.ndarray:
    """Japanese two-row plate: the office's kanji and the class number small on top, a kana and the four
    digits (``12-34``, ``·· 56``) large below; green on white (private), white on green (commercial), black on
    yellow (kei), yellow on black (kei commercial)."""
    weights = np.array([p for _, p in _JP_COLOURS])
    (bg, fg), _ = _JP_COLOURS[int(rng.choice(len(_JP_COLOURS), p=weights / weights.sum()))]
    img = draw.canvas(h, w, _jitter(rng, bg, 6) if bg else _off_white(rng))
    fg = _jitter(rng, fg, 6)
    t = max(int(round(h * 0.02)), 1)
    draw.rect(img, (t, t, w - t, h - t), fg, t)
    if rng.random() < 0.7:
        _bolts(rng, img, h * 0.14, (w * 0.2, w * 0.8))
    # top row: 2 kanji + a 3-digit class number, centred
    ty1, ty2 = h * 0.08, h * 0.36
    kw = (ty2 - ty1) * 0.95
    x = w * rng.uniform(0.28, 0.33)
    for _ in range(int(rng.integers(2, 4))):
        _glyph_jp(rng, img, (x, ty1, x + kw, ty2), fg, int(rng.integers(4, 8)))
        x += kw * 1.05
    draw.text_box(img, _fill(rng, _pick(rng, ("DDD", "DD", "DDL"))), (x + kw * 0.2, ty1, x + kw * 2.4, ty2), fg,
                  fonts.SANS_BOLD)
    # bottom row: one kana on the left, then the number
    by1, by2 = h * 0.42, h * 0.92
    _glyph_jp(rng, img, (w * 0.05, by1 + (by2 - by1) * 0.25, w * 0.17, by2 - (by2 - by1) * 0.1), fg,
              int(rng.integers(2, 4)))
    number = _pick(rng, ("DD-DD", "DD-DD", "D-DD", "DDD"))
    text = _fill(rng, number)
    if "-" not in text:
        text = "\u00b7 " * (4 - len(text)) + text   # the leading dots of a short number
    draw.text_box(img, text, (w * 0.2, by1, w * 0.95, by2), fg, _pick(rng, fonts.PLATE_FONTS))
    return img


_RENDERERS = {"eu": _eu, "ru": _ru, "us": _us, "br_mercosur": _br, "uk_rear": _uk, "two_line": _two_line,
              "dark": _dark, "black": _black, "blue": _blue, "red": _red, "yellow": _yellow, "jp": _jp}


def layout_size_mm(rng: np.random.Generator, layout: str) -> tuple[float, float]:
    sizes = _SIZES_MM[layout]
    return sizes[0] if len(sizes) == 1 else _pick(rng, sizes)   # a single size draws nothing from rng


def check_layout(layout: str) -> None:
    if layout not in _RENDERERS:
        raise ValueError(f"unknown plate layout {layout!r}; valid: {', '.join(ALL_LAYOUTS)}")


def render_plate_rgba(rng: np.random.Generator, layout: str | None = None, height_px: int = 64,
                      wear: float | None = None, size_mm: tuple[float, float] | None = None,
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plate BGR uint8, its alpha (uint8, rounded corners) and its 4 corners (TL, TR, BR, BL)."""
    if layout is None:
        layout = _pick(rng, LAYOUTS)
    check_layout(layout)
    h = max(int(height_px), 8)
    w_mm, h_mm = size_mm or layout_size_mm(rng, layout)
    w = max(int(round(h * w_mm / h_mm)), 8)
    img = _RENDERERS[layout](rng, h, w, h / h_mm)
    strength = float(rng.uniform(0.0, 0.5) ** 1.5) if wear is None else wear
    img = draw.wear(rng, img, strength)
    alpha = draw.rounded_mask(h, w, h * rng.uniform(0.02, 0.08))
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    return img, alpha, corners


def render_plate(rng: np.random.Generator, layout: str | None = None, height_px: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A flat frontal plate (BGR uint8, ``height_px`` tall, width by the layout's aspect) and its corners.

    Corners are (TL, TR, BR, BL) in plate-image pixel-edge coordinates, i.e. the image border.
    The rounded-off corner pixels are filled with dark grey.
    """
    img, alpha, corners = render_plate_rgba(rng, layout, height_px)
    a = alpha.astype(np.float32)[..., None] / 255.0
    img = (img.astype(np.float32) * a + 40.0 * (1 - a)).astype(np.uint8)
    return img, corners
