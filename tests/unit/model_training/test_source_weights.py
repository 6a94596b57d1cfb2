"""A detector row's ``source_weights``: a folder's photos drawn more often; unset, every photo alike."""

from __future__ import annotations

import numpy as np
import pytest

from model_training import augment
from model_training.augment import DetectorSampler, Photo
from model_training.train import default_config


def _photo(value: int, source: str) -> Photo:
    return Photo(np.full((320, 320, 3), value, np.uint8), np.zeros((0, 4), np.float32),
                 np.zeros((0, 4, 2), np.float32), source)


def _bright_share(monkeypatch: pytest.MonkeyPatch, weights: dict[str, float] | None, n: int = 400) -> float:
    monkeypatch.setattr(augment, "photometric", lambda rng, x: x)
    photos = [_photo(0, "oi-streets"), _photo(0, "open-lpr"), _photo(0, "open-lpr/extra"), _photo(255, "ro-dashcam")]
    sampler = DetectorSampler(photos, default_config()["detector"], size=320, synth_p=0.0, seed=3,
                              source_weights=weights)
    # a crop of the bright photo is bright wherever it lies inside the photo (the border is black)
    return float(np.mean([sampler.sample()[0].mean() > -0.5 for _ in range(n)]))


def test_a_weighted_folder_is_drawn_that_much_more_often(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = _bright_share(monkeypatch, None)
    weighted = _bright_share(monkeypatch, {"ro-dashcam": 5.0})       # 5 / (1 + 1 + 1 + 5) of the draws
    assert plain < 0.4 < 0.5 < weighted
    # a folder is named by its first path part: open-lpr/extra counts as open-lpr
    assert _bright_share(monkeypatch, {"open-lpr": 5.0}) < plain


def test_a_weight_for_a_folder_with_no_photo_is_refused() -> None:
    with pytest.raises(ValueError, match="oi-street"):
        DetectorSampler([_photo(0, "oi-streets")], default_config()["detector"], size=320, synth_p=0.0,
                        source_weights={"oi-street": 2.0})
