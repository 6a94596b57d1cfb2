"""Hard negatives: plate-ish things that are not plates (pasted, never labelled).

Road and shop signs with text, stickers, dealer badges, chrome bumper lettering, grilles and
vents with horizontal slats, striped window reflections, price tags, phone numbers on white
rectangles of a non-plate aspect, and logos. Each kind draws at a given height and returns its
BGR image plus an alpha mask (many are not rectangles).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import cv2
import numpy as np

from model_training.synth import draw, fonts

T = TypeVar("T")

NEGATIVE_KINDS = ("sign", "sticker", "badge", "bumper_text", "grille", "reflection", "price_tag", "phone",
                  "logo")

_WORDS = ("PARKING", "EXIT", "STOP", "PHARMACY", "BAKERY", "HOTEL", "CAFE", "SALE", "OPEN", "GARAGE", "TAXI",
          "SERVICE", "CENTRU", "STRADA", "MARKET", "BANK", "POLICE", "SCHOOL", "BUS", "ONE WAY", "NO ENTRY",
          "TIRES", "CAR WASH", "PIZZA", "AUTO", "SHOP", "LIDL", "OMV", "SHELL")
_BADGE = ("AUTO MAX", "MOTORS", "CAR CENTER", "AUTOHAUS", "DEALER", "PREMIUM CARS", "AUTO PLUS", "FLEET")
_BUMPER = ("HYBRID", "4MATIC", "TDI", "quattro", "xDrive", "GTI", "AMG", "TURBO", "4x4", "SPORT", "V6",
           "AWD", "ECO", "e-tron", "TSI", "RS")
_LOGO = ("VW", "BMW", "KIA", "Ford", "FIAT", "SEAT", "MINI", "Opel", "Dacia", "Audi", "SKODA")

Item = tuple[np.ndarray, np.ndarray, bool]


def _pick(rng: np.random.Generator, seq: Sequence[T]) -> T:
    return seq[int(rng.integers(len(seq)))]


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    c = rng.integers(0, 256, 3)
    return (int(c[0]), int(c[1]), int(c[2]))


def _full(h: int, w: int) -> np.ndarray:
    return np.full((h, w), 255, np.uint8)


def _sign(rng: np.random.Generator, h: int, aspect: float) -> Item:
    w = max(int(h * aspect), 8)
    bg, fg = _pick(rng, (((150, 80, 0), (245, 245, 245)), ((40, 110, 0), (245, 245, 245)),
                         ((30, 60, 110), (240, 240, 240)), ((30, 30, 190), (245, 245, 245)),
                         ((245, 245, 245), (30, 30, 30)), ((0, 200, 250), (20, 20, 20)), (_colour(rng), _colour(rng))))
    img = draw.canvas(h, w, bg)
    draw.rect(img, (h * 0.05, h * 0.05, w - h * 0.05, h - h * 0.05), fg, max(int(h * 0.04), 1))
    words = " ".join(_pick(rng, _WORDS) for _ in range(int(rng.integers(1, 3))))
    font = _pick(rng, fonts.ALL_FONTS)
    if rng.random() < 0.5 and aspect < 3:
        draw.text_box(img, words, (h * 0.15, h * 0.12, w - h * 0.15, h * 0.5), fg, font, keep_aspect=True)
        draw.text_box(img, _pick(rng, _WORDS), (h * 0.15, h * 0.56, w - h * 0.15, h * 0.88), fg, font, keep_aspect=True)
    else:
        draw.text_box(img, words, (h * 0.2, h * 0.2, w - h * 0.2, h * 0.8), fg, font, keep_aspect=True)
    if rng.random() < 0.4:  # arrow / pictogram block
        draw.rect(img, (h * 0.15, h * 0.15, h * 0.85, h * 0.85), fg)
    return img, draw.rounded_mask(h, w, h * rng.uniform(0, 0.15)), False


def _sticker(rng: np.random.Generator, h: int, aspect: float) -> Item:
    w = max(int(h * aspect), 8)
    img = draw.canvas(h, w, _colour(rng))
    alpha = np.zeros((h, w), np.uint8)
    cv2.ellipse(alpha, (w // 2, h // 2), (max(w // 2 - 1, 1), max(h // 2 - 1, 1)), 0, 0, 360, 255, -1, cv2.LINE_AA)
    draw.circle(img, (w / 2, h / 2), h * 0.35, _colour(rng))
    draw.text_box(img, _pick(rng, ("2025", "TUV", "ITP", "OK", "A", "CH", "D", "VIGNETTE", "EV")),
                  (w * 0.2, h * 0.3, w * 0.8, h * 0.7), _colour(rng), fonts.SANS_BOLD, keep_aspect=True)
    return img, alpha, False


def _badge(rng: np.random.Generator, h: int, aspect: float) -> Item:
    w = max(int(h * aspect), 8)
    dark = rng.random() < 0.5
    top, bottom = ((60, 60, 60), (15, 15, 15)) if dark else ((235, 235, 235), (140, 140, 140))
    img = draw.vertical_gradient(h, w, top, bottom)
    fg = (230, 230, 230) if dark else (30, 30, 30)
    draw.text_box(img, _pick(rng, _BADGE), (h * 0.2, h * 0.15, w - h * 0.2, h * 0.6), fg, fonts.SANS_OBLIQUE,
                  keep_aspect=True)
    draw.text_box(img, _pick(rng, ("www.automax.ro", "0800 123 456", "SINCE 1998", "CLUJ", "MUNCHEN")),
                  (h * 0.3, h * 0.65, w - h * 0.3, h * 0.88), fg, fonts.SANS, keep_aspect=True)
    return img, draw.rounded_mask(h, w, h * 0.3), False


def _bumper_text(rng: np.random.Generator, h: int, aspect: float) -> Item:
    text = _pick(rng, _BUMPER)
    mask = fonts.text_mask(text, _pick(rng, fonts.ALL_FONTS), h)
    w = max(int(h * mask.shape[1] / mask.shape[0]), 8)
    alpha = cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA)
    chrome = rng.random() < 0.6
    img = draw.vertical_gradient(h, w, (250, 250, 250), (110, 110, 110)) if chrome else draw.canvas(h, w, _colour(rng))
    return img, alpha, False


def _grille(rng: np.random.Generator, h: int, aspect: float) -> Item:
    w = max(int(h * aspect), 8)
    base = int(rng.uniform(10, 60))
    img = draw.canvas(h, w, (base, base, base))
    n = int(rng.integers(3, 9))
    slat = int(rng.uniform(60, 200))
    for k in range(n):
        y = (k + 0.5) * h / n
        draw.rect(img, (h * 0.08, y - h / n * 0.25, w - h * 0.08, y + h / n * 0.25), (slat, slat, slat))
    if rng.random() < 0.3:  # honeycomb-ish vertical bars
        for x in np.arange(0, w, h / rng.uniform(2, 5)):
            draw.rect(img, (x, 0, x + max(h * 0.04, 1), h), (base, base, base))
    return img, draw.rounded_mask(h, w, h * rng.uniform(0.05, 0.5)), False


def _reflection(rng: np.random.Generator, h: int, aspect: float) -> Item:
    w = max(int(h * aspect), 8)
    img = draw.vertical_gradient(h, w, _colour(rng), _colour(rng))
    n = int(rng.integers(2, 7))
    shift = rng.uniform(-1, 1) * h
    for _ in range(n):
        x = rng.uniform(0, w)
        t = rng.uniform(0.03, 0.15) * w
        pts = np.array([[x, 0], [x + t, 0], [x + t + shift, h], [x + shift, h]], np.int32)
        cv2.fillConvexPoly(img, pts, (235, 235, 235), cv2.LINE_AA)
    img = cv2.GaussianBlur(img, (0, 0), max(h * 0.03, 0.5))
    alpha = (draw.smooth_noise(rng, h, w) * 120 + 100).astype(np.uint8)
    return img, alpha, False


def _price_tag(rng: np.random.Generator, h: int, aspect: float) -> Item:
    w = max(int(h * aspect), 8)
    img = draw.canvas(h, w, _pick(rng, ((245, 245, 245), (0, 220, 250), (60, 60, 230))))
    price = _pick(rng, ("{} 12.990", "{} 8.500", "{} 23 900", "{}4,999", "{} 15.750", "{} 9.999"))
    price = price.format(_pick(rng, ("\u20ac", "$", "EUR", "RON", "\u00a3")))
    fg = _pick(rng, ((30, 30, 200), (20, 20, 20)))
    draw.text_box(img, price, (h * 0.1, h * 0.35, w - h * 0.1, h * 0.9), fg, fonts.SANS_BOLD, keep_aspect=True)
    draw.text_box(img, _pick(rng, ("PRET", "PRICE", "PREIS", "PRIX", "ONLY")), (w * 0.3, h * 0.06, w * 0.7, h * 0.3),
                  fg, fonts.SANS, keep_aspect=True)
    return img, draw.rounded_mask(h, w, h * 0.08), False


def _phone(rng: np.random.Generator, h: int, aspect: float) -> Item:
    w = max(int(h * aspect), 8)
    img = draw.canvas(h, w, (245, 245, 245))
    digits = "".join(str(int(d)) for d in rng.integers(0, 10, 9))
    number = f"07{digits[:2]} {digits[2:5]} {digits[5:8]}" if rng.random() < 0.5 else f"+40 {digits[:3]} {digits[3:6]} {digits[6:]}"
    fg = _pick(rng, ((20, 20, 20), (150, 50, 0), (30, 30, 190)))
    if aspect < 3.2:  # two lines: tall white card
        draw.text_box(img, _pick(rng, ("DE VANZARE", "FOR SALE", "ZU VERKAUFEN", "A VENDRE")),
                      (h * 0.1, h * 0.1, w - h * 0.1, h * 0.45), fg, fonts.SANS_BOLD, keep_aspect=True)
        draw.text_box(img, number, (h * 0.1, h * 0.55, w - h * 0.1, h * 0.9), fg, fonts.SANS_BOLD, keep_aspect=True)
    else:  # a long thin strip, much flatter than a plate
        draw.text_box(img, number, (h * 0.15, h * 0.15, w - h * 0.15, h * 0.85), fg, fonts.SANS_BOLD, keep_aspect=True)
    return img, _full(h, w), False


def _logo(rng: np.random.Generator, h: int, aspect: float) -> Item:
    w = max(int(h * aspect), 8)
    img = draw.canvas(h, w, _pick(rng, ((140, 50, 10), (200, 200, 200), (30, 30, 30), (20, 20, 160))))
    alpha = np.zeros((h, w), np.uint8)
    cv2.ellipse(alpha, (w // 2, h // 2), (max(w // 2 - 1, 1), max(h // 2 - 1, 1)), 0, 0, 360, 255, -1, cv2.LINE_AA)
    cv2.ellipse(img, (w // 2, h // 2), (max(int(w * 0.45), 1), max(int(h * 0.42), 1)), 0, 0, 360, (230, 230, 230),
                max(int(h * 0.05), 1), cv2.LINE_AA)
    draw.text_box(img, _pick(rng, _LOGO), (w * 0.18, h * 0.25, w * 0.82, h * 0.75), (240, 240, 240),
                  _pick(rng, (fonts.SANS_OBLIQUE, fonts.SERIF_BOLD, fonts.SANS_BOLD)), keep_aspect=True)
    return img, alpha, False


# kind -> (drawer, aspect sampler); aspects avoid the common plate ratios where it matters
_KINDS: dict[str, tuple[Callable[[np.random.Generator, int, float], Item], Callable[[np.random.Generator], float]]] = {
    "sign": (_sign, lambda r: float(r.uniform(1.2, 3.5) if r.random() < 0.6 else r.uniform(5.5, 8.0))),
    "sticker": (_sticker, lambda r: float(r.uniform(0.9, 1.6))),
    "badge": (_badge, lambda r: float(r.uniform(2.5, 4.5))),
    "bumper_text": (_bumper_text, lambda r: 1.0),  # aspect follows the word
    "grille": (_grille, lambda r: float(r.uniform(2.0, 6.0))),
    "reflection": (_reflection, lambda r: float(r.uniform(1.5, 4.0))),
    "price_tag": (_price_tag, lambda r: float(r.uniform(1.3, 2.6))),
    "phone": (_phone, lambda r: float(r.uniform(2.0, 3.0) if r.random() < 0.5 else r.uniform(6.0, 9.0))),
    "logo": (_logo, lambda r: float(r.uniform(1.0, 2.6))),
}


def negative_item(rng: np.random.Generator, kind: str | None = None) -> tuple[float, Callable[[int], Item]]:
    """Pick a kind and its aspect; returns (aspect, draw(height_px) -> (bgr, alpha, rect_edges))."""
    kind = kind or _pick(rng, NEGATIVE_KINDS)
    if kind not in _KINDS:
        raise ValueError(f"unknown negative kind {kind!r}; valid: {', '.join(NEGATIVE_KINDS)}")
    drawer, aspect_of = _KINDS[kind]
    aspect = aspect_of(rng)
    if kind == "bumper_text":
        text_mask = fonts.text_mask(_pick(rng, _BUMPER), fonts.SANS_BOLD, 32)
        aspect = text_mask.shape[1] / text_mask.shape[0]

    def draw_item(height_px: int) -> Item:
        img, alpha, rect_edges = drawer(rng, max(int(height_px), 8), aspect)
        if img.shape[1] != alpha.shape[1]:
            alpha = cv2.resize(alpha, (img.shape[1], img.shape[0]))
        # keep the promised aspect exactly (bumper text sizes itself from the word)
        want_w = max(int(round(img.shape[0] * aspect)), 8)
        if img.shape[1] != want_w:
            img = cv2.resize(img, (want_w, img.shape[0]))
            alpha = cv2.resize(alpha, (want_w, img.shape[0]))
        if rng.random() < 0.5:
            img = draw.wear(rng, img, float(rng.uniform(0, 0.4)))
        return img, alpha, rect_edges

    return aspect, draw_item


def render_negative_rgba(rng: np.random.Generator, height_px: int = 64, kind: str | None = None,
                         ) -> tuple[np.ndarray, np.ndarray]:
    _, draw_item = negative_item(rng, kind)
    img, alpha, _ = draw_item(height_px)
    return img, alpha


def render_negative(rng: np.random.Generator, height_px: int = 64, kind: str | None = None) -> np.ndarray:
    """A flat plate-ish non-plate (BGR uint8, ``height_px`` tall), shown over mid grey where transparent."""
    img, alpha = render_negative_rgba(rng, height_px, kind)
    a = alpha.astype(np.float32)[..., None] / 255.0
    return (img.astype(np.float32) * a + 110.0 * (1 - a)).astype(np.uint8)
