"""The golden photos (the shipped golden set, the drawn ones) and the smoke check a model passes
before a worker serves it."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from model_store.errors import SmokeCheckError
from model_store.golden import (
    GOLDEN_DIR,
    GoldenPhoto,
    drawn_photos,
    golden_photos,
    load_golden_set,
    smoke_check,
)
from model_store.registry_settings import RegistryOptions
from model_store.runtime import PlateFinding, Timings, load_model


def test_the_golden_set_is_shipped_small_labelled_and_attributed() -> None:
    photos = golden_photos()
    assert [p.name for p in photos] == sorted(p.stem for p in (GOLDEN_DIR / "images").iterdir())
    assert len(photos) == 17 and sum(len(p.plates) for p in photos) == 18
    assert sum(f.stat().st_size for f in GOLDEN_DIR.rglob("*") if f.is_file()) < 600_000
    sources = json.loads((GOLDEN_DIR / "sources.json").read_text())
    assert set(sources) == {p.name for p in photos}
    licences = {v["licence"].split(" ")[0] for v in sources.values()}
    assert licences == {"the", "MIT", "CC0"}  # the project's own, MIT, CC0: nothing else
    licence_text = (GOLDEN_DIR / "LICENSE").read_text()
    assert "MIT License" in licence_text and "CC0" in licence_text and "Robert Lucian Chiriac" in licence_text
    for photo in photos:
        h, w = photo.image.shape[:2]
        assert photo.plates, photo.name  # every golden photo shows at least one plate
        for plate in photo.plates:
            assert len(plate) == 4 and all(-1 <= x <= w + 1 and -1 <= y <= h + 1 for x, y in plate), photo.name


def test_a_golden_set_folder_without_photos_is_a_clear_error(tmp_path: Any) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(SmokeCheckError, match="no golden photos"):
        load_golden_set(tmp_path)


def test_drawn_photos_are_deterministic() -> None:
    a, b = drawn_photos(), drawn_photos()
    assert len(a) >= 3
    for x, y in zip(a, b, strict=True):
        assert x.name == y.name and np.array_equal(x.image, y.image)
        assert x.image.dtype == np.uint8 and x.image.ndim == 3
        h, w = x.image.shape[:2]
        for plate in x.plates:
            assert all(0 <= px <= w and 0 <= py <= h for px, py in plate)
            # the plate is drawn white: its centre is bright
            cx, cy = np.mean(plate, axis=0)
            assert x.image[int(cy) - 8:int(cy) + 8, int(cx) - 40:int(cx) + 40].mean() > 120


@dataclass
class FakeModel:
    """Answers every photo with ``plates(photo)``; ``delay`` seconds per call."""

    plates: Any
    delay: float = 0.0
    config: dict[str, Any] = field(default_factory=lambda: {"name": "fake", "version": "1"})

    @property
    def tag(self) -> str:
        return "fake@1"

    def find_plates(self, image: np.ndarray) -> tuple[list[PlateFinding], Timings]:
        time.sleep(self.delay)
        return self.plates(image), Timings()


def _finding(poly: Any, score: float = 0.9) -> PlateFinding:
    return PlateFinding(tuple(tuple(p) for p in poly), score, (0, 0, 1, 1), score)


def _truth(photo_image: np.ndarray, photos: list[GoldenPhoto]) -> list[PlateFinding]:
    for p in photos:
        if p.image is photo_image:
            return [_finding(q) for q in p.plates]
    return []


def test_a_good_model_passes_and_is_counted() -> None:
    photos = golden_photos()
    plates = sum(len(p.plates) for p in photos)
    report = smoke_check(FakeModel(lambda img: _truth(img, photos)), photos, min_found=plates)  # type: ignore[arg-type]
    assert report["found"] == report["plates"] == plates


@pytest.mark.parametrize("plates, message", [
    (lambda img: [_finding([[0, 0], [10, 0], [10, float("nan")], [0, 10]])], "non-finite"),
    (lambda img: [_finding([[0, 0], [10, 0], [10, 10], [0, 10]], score=float("inf"))], "non-finite"),
    (lambda img: [_finding([[-500, 0], [10, 0], [10, 10], [0, 10]])], "outside"),
    (lambda img: 1 / 0, "ZeroDivisionError"),
])
def test_misbehaving_models_fail(plates: Any, message: str) -> None:
    with pytest.raises(SmokeCheckError, match=message):
        smoke_check(FakeModel(plates))  # type: ignore[arg-type]


def test_slow_model_fails() -> None:
    with pytest.raises(SmokeCheckError, match="takes"):
        smoke_check(FakeModel(lambda img: [], delay=0.05), max_ms=10)  # type: ignore[arg-type]


def test_expectations_are_optional() -> None:
    assert smoke_check(FakeModel(lambda img: []))["found"] == 0  # type: ignore[arg-type]
    with pytest.raises(SmokeCheckError, match="finds 0 of the 18"):
        smoke_check(FakeModel(lambda img: []), min_found=1)  # type: ignore[arg-type]


def test_the_shipped_bundle_passes_with_the_default_minimum() -> None:
    needed = RegistryOptions().smoke_min_found
    report = smoke_check(load_model(threads=1), min_found=needed)
    assert report["photos"] == 17 and report["found"] >= needed >= 12
