"""The bounded-region rule (``large_region_fraction`` / ``large_region_threshold``): off by default, as before 3.0.0;
on, a region covering more of the photo than the fraction stays only with a sure plate score."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model_store.bundle import SHIPPED_DIR, landmark_config
from model_store.errors import ModelConfigError
from model_store.runtime import Detection, PlateModel, large_region_rule, too_large


class _Landmarks:
    """Scores crops in turn from ``scores``; corners fail the plausibility check (the detector box is the region)."""

    def __init__(self, scores: list[float]) -> None:
        self.scores = np.asarray(scores, np.float64)

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        p = np.clip(self.scores[: len(batch)], 1e-6, 1 - 1e-6)
        logits = np.stack([np.zeros_like(p), np.log(p / (1 - p))], axis=1).astype(np.float32)
        return [np.zeros((len(batch), 8), np.float32), logits]


def _model(scores: list[float], **lm_extra: float | None) -> PlateModel:
    lm = {"input_w": 128, "input_h": 64, "expand_x": 0.25, "expand_y": 0.6, "min_aspect": 1.0, "max_aspect": 4.0,
          "mean": [0.5] * 3, "std": [0.25] * 3, "score_threshold": 0.7, "keep_detector_above": 1.01,
          "margin_x": 0.0, "margin_y": 0.0, **lm_extra}
    return PlateModel(Path("."), {"name": "t", "version": "0", "landmarks": lm}, "onnx", None, _Landmarks(scores))


IMG = np.zeros((300, 400, 3), np.uint8)                   # 120,000 px
PLATE = Detection((100.0, 100.0, 160.0, 115.0), 0.9)      # 900 px: 0.75% of the photo
BUS = Detection((20.0, 50.0, 380.0, 250.0), 0.5)          # 72,000 px: 60% of the photo


def test_off_by_default_and_in_the_shipped_bundles() -> None:
    assert large_region_rule(_model([0.95, 0.95]).config["landmarks"]) is None
    assert [f.box for f in _model([0.95, 0.95]).refine(IMG, [PLATE, BUS])] == [PLATE.box, BUS.box]
    shipped = sorted(SHIPPED_DIR.glob("*/model.json"))
    assert {p.parent.name for p in shipped} >= {"plateveil-plates-1.10.0", "plateveil-plates-2.0.0",
                                                 "plateveil-plates-3.0.0"}
    for path in shipped:   # measured: every setting lost plates (model card), so no shipped bundle sets it
        cfg = json.loads(path.read_text())
        assert large_region_rule(cfg["landmarks"]) is None
        assert landmark_config(cfg).large_region_fraction is None


def test_a_region_larger_than_the_fraction_goes_unless_the_score_is_sure() -> None:
    rule = {"large_region_fraction": 0.1, "large_region_threshold": 0.99}
    kept = _model([0.95, 0.95], **rule).refine(IMG, [PLATE, BUS])
    assert [f.box for f in kept] == [PLATE.box]               # the bus (0.95 < 0.99) goes, the plate stays
    kept = _model([0.95, 0.995], **rule).refine(IMG, [PLATE, BUS])
    assert [f.box for f in kept] == [PLATE.box, BUS.box]      # a close-up plate the model is sure of stays
    # without a threshold (1.01 by default) every region over the fraction goes, whatever its score
    kept = _model([0.95, 0.9999], large_region_fraction=0.1).refine(IMG, [PLATE, BUS])
    assert [f.box for f in kept] == [PLATE.box]
    # under the fraction nothing changes
    assert len(_model([0.95, 0.95], large_region_fraction=0.7).refine(IMG, [PLATE, BUS])) == 2


def test_too_large_compares_area_with_the_fraction_of_the_photo() -> None:
    assert too_large(11.0, 100.0, 0.5, (0.1, 0.99)) and not too_large(10.0, 100.0, 0.5, (0.1, 0.99))
    assert not too_large(50.0, 100.0, 0.99, (0.1, 0.99)) and not too_large(1e9, 1.0, 0.0, None)


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_the_schema_refuses_a_fraction_out_of_range(fraction: float) -> None:
    cfg = _model([0.9], large_region_fraction=fraction).config
    with pytest.raises(ModelConfigError, match="large_region_fraction"):
        landmark_config(cfg)
