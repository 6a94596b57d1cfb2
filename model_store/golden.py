"""The golden photos and the smoke check every model passes before a worker serves it (and before
``plateveil models publish`` uploads it).

The photos are the golden set shipped in ``model_store/golden_set/`` (:data:`GOLDEN_DIR`; generated
scenes and a few redistributable real photos with their plate corners, see its README), which the
promotion quality gate evaluates too. :func:`drawn_photos` are three more drawn here (no files).
Both are fixed, so a check that passes once passes always for the same model.

The smoke check asks: does the model run on each photo without an error, are its outputs finite,
are its polygons inside (or just around) the photo, is it fast enough; and, when asked
(``min_found``), does it find the drawn plates. A random-weight placeholder passes the first
four; the hot swap also asks for ``PLATEVEIL_SMOKE_MIN_FOUND`` (default 1) of the 3 plates, so a
bundle that loads and runs but is blind (wrong weights, a threshold typo) does not replace a working one.
"""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from model_store.errors import SmokeCheckError
from model_store.runtime import PlateModel

DEFAULT_MAX_MS = 3000.0
GOLDEN_DIR = Path(__file__).resolve().parent / "golden_set"
GOLDEN_FORMAT = "corners"  # images/<name>.jpg + corners/<name>.json {"plates": [[[x, y] x4], ...]}


@dataclass(frozen=True)
class GoldenPhoto:
    name: str
    image: np.ndarray
    plates: tuple[tuple[tuple[float, float], ...], ...]  # TL TR BR BL per plate, image pixels


def _draw_plate(img: np.ndarray, quad: np.ndarray, text: str) -> None:
    """A white plate with a black rim and black characters, warped onto ``quad``."""
    pw, ph = 260, 56
    plate = np.full((ph, pw, 3), 245, np.uint8)
    cv2.rectangle(plate, (1, 1), (pw - 2, ph - 2), (20, 20, 20), 3)
    cv2.rectangle(plate, (4, 4), (24, ph - 5), (160, 60, 20), -1)  # the blue country band
    cv2.putText(plate, text, (32, 43), cv2.FONT_HERSHEY_SIMPLEX, 1.15, (10, 10, 10), 3, cv2.LINE_AA)
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
    m = cv2.getPerspectiveTransform(src, quad.astype(np.float32))
    h, w = img.shape[:2]
    warped = cv2.warpPerspective(plate, m, (w, h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full((ph, pw), 255, np.uint8), m, (w, h), flags=cv2.INTER_NEAREST)
    img[mask > 0] = warped[mask > 0]


def _car_photo(seed: int, size: tuple[int, int], colour: tuple[int, int, int], plate_quad: list[list[float]],
               text: str) -> GoldenPhoto:
    w, h = size
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    sky = np.linspace(235, 170, h // 2, dtype=np.float32)
    img[: h // 2] = np.stack([sky, sky * 0.95, sky * 0.8], axis=1)[:, None, :].astype(np.uint8)
    img[h // 2:] = (85, 88, 90)  # asphalt
    body = (int(w * 0.12), int(h * 0.38), int(w * 0.88), int(h * 0.82))
    cv2.rectangle(img, body[:2], body[2:], colour, -1)
    roof = np.array([[w * 0.25, h * 0.38], [w * 0.35, h * 0.2], [w * 0.65, h * 0.2], [w * 0.75, h * 0.38]], np.int32)
    cv2.fillConvexPoly(img, roof, colour)
    cv2.fillConvexPoly(img, (roof * [1, 1] + [[12, 0], [8, 10], [-8, 10], [-12, 0]]).astype(np.int32),
                       (70, 60, 50))  # windscreen
    for cx in (w * 0.25, w * 0.75):
        cv2.circle(img, (int(cx), int(h * 0.82)), int(h * 0.09), (25, 25, 25), -1)
    for x in (body[0] + 20, body[2] - 80):
        cv2.rectangle(img, (x, int(h * 0.45)), (x + 60, int(h * 0.52)), (200, 230, 240), -1)  # lights
    quad = np.asarray(plate_quad, np.float64)
    _draw_plate(img, quad, text)
    noise = rng.normal(0, 4, img.shape)
    img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    plate = tuple((float(x), float(y)) for x, y in quad)
    return GoldenPhoto(f"golden-{seed}", img, (plate,))


def load_golden_set(folder: str | Path = GOLDEN_DIR) -> list[GoldenPhoto]:
    """The photos of a golden set folder in the corners format, with their plates."""
    folder = Path(folder)
    images = sorted(p for p in (folder / "images").glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not images:
        raise SmokeCheckError(f"no golden photos in {folder / 'images'}")
    photos = []
    for path in images:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SmokeCheckError(f"cannot read the golden photo {path}")
        label = folder / "corners" / f"{path.stem}.json"
        quads = json.loads(label.read_text())["plates"] if label.is_file() else []
        plates = tuple(tuple((float(x), float(y)) for x, y in quad) for quad in quads)
        photos.append(GoldenPhoto(path.stem, image, plates))
    return photos


@functools.lru_cache(maxsize=1)
def _shipped_golden_set() -> tuple[GoldenPhoto, ...]:
    return tuple(load_golden_set(GOLDEN_DIR))


def golden_photos() -> list[GoldenPhoto]:
    """The shipped golden set (read once per process)."""
    return list(_shipped_golden_set())


def drawn_photos() -> list[GoldenPhoto]:
    """Three deterministic photos: a frontal plate, a small one on a wide photo, a tilted one."""
    return [
        _car_photo(1, (640, 480), (40, 40, 170), [[250, 300], [390, 300], [390, 330], [250, 330]], "AB 123 CD"),
        _car_photo(2, (960, 540), (150, 150, 150), [[440, 360], [530, 360], [530, 380], [440, 380]], "KX 4711"),
        _car_photo(3, (480, 640), (30, 110, 30), [[160, 420], [320, 400], [324, 436], [164, 458]], "M 0815 Z"),
    ]


def _polygon_iou_box(a: tuple[tuple[float, float], ...], b: tuple[tuple[float, float], ...]) -> float:
    """IoU of the bounding boxes of two polygons (enough to say "found it" in a smoke check)."""
    ax, ay = zip(*a, strict=True)
    bx, by = zip(*b, strict=True)
    ix = max(0.0, min(max(ax), max(bx)) - max(min(ax), min(bx)))
    iy = max(0.0, min(max(ay), max(by)) - max(min(ay), min(by)))
    inter = ix * iy
    union = (max(ax) - min(ax)) * (max(ay) - min(ay)) + (max(bx) - min(bx)) * (max(by) - min(by)) - inter
    return inter / union if union > 0 else 0.0


def smoke_check(model: PlateModel, photos: list[GoldenPhoto] | None = None, max_ms: float = DEFAULT_MAX_MS,
                min_found: int | None = None, margin: float = 0.1) -> dict[str, Any]:
    """Run ``model`` on the golden photos; raise :class:`SmokeCheckError` saying what is wrong.

    ``max_ms``: the slowest photo's limit. ``margin``: how far (fraction of the photo's long side)
    a polygon may reach outside the photo (plates at the edge get padded past it).
    ``min_found``: when set, how many of the drawn plates must be found (box IoU >= 0.3).
    Returns a small report: photos, plates found, slowest milliseconds.
    """
    photos = golden_photos() if photos is None else photos
    slowest, found, total = 0.0, 0, 0
    for photo in photos:
        h, w = photo.image.shape[:2]
        t0 = time.perf_counter()
        try:
            plates, _ = model.find_plates(photo.image)
        except Exception as exc:  # anything a broken graph raises
            raise SmokeCheckError(f"{model.tag} fails on {photo.name}: {type(exc).__name__}: {exc}") from exc
        ms = (time.perf_counter() - t0) * 1000
        slowest = max(slowest, ms)
        if ms > max_ms:
            raise SmokeCheckError(f"{model.tag} takes {ms:.0f} ms on {photo.name} (limit {max_ms:.0f} ms)")
        tol = margin * max(h, w)
        for plate in plates:
            values = [v for point in plate.polygon for v in point] + [plate.score, plate.det_score]
            if len(plate.polygon) != 4 or not all(math.isfinite(v) for v in values):
                raise SmokeCheckError(f"{model.tag} gives a non-finite or malformed plate on {photo.name}: "
                                      f"{plate.to_dict()}")
            if any(x < -tol or y < -tol or x > w + tol or y > h + tol for x, y in plate.polygon):
                raise SmokeCheckError(f"{model.tag} gives a polygon outside the {w}x{h} photo {photo.name}: "
                                      f"{plate.to_dict()['polygon']}")
        total += len(photo.plates)
        found += sum(any(_polygon_iou_box(gt, p.polygon) >= 0.3 for p in plates) for gt in photo.plates)
    if min_found is not None and found < min_found:
        raise SmokeCheckError(f"{model.tag} finds {found} of the {total} golden plates (needs {min_found})")
    return {"model": model.tag, "photos": len(photos), "plates": total, "found": found, "slowest_ms": round(slowest, 1)}
