"""The plate score with the detector's as a second opinion (``det_weight``): off by default, as before 3.0.0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_store.bundle import landmark_config
from model_store.runtime import Detection, PlateModel, plate_score


class _Landmarks:
    """Scores every crop 0.6 plate (logits 0, log(1.5)); corners fail the plausibility check (the box is used)."""

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        n = len(batch)
        return [np.zeros((n, 8), np.float32), np.tile(np.array([[0.0, np.log(1.5)]], np.float32), (n, 1))]


def _model(**lm_extra: float) -> PlateModel:
    lm = {"input_w": 128, "input_h": 64, "expand_x": 0.25, "expand_y": 0.6, "min_aspect": 1.0, "max_aspect": 4.0,
          "mean": [0.5] * 3, "std": [0.25] * 3, "score_threshold": 0.7, "keep_detector_above": 1.01,
          "margin_x": 0.0, "margin_y": 0.0, **lm_extra}
    return PlateModel(Path("."), {"name": "t", "version": "0", "landmarks": lm}, "onnx", None, _Landmarks())


def test_without_a_weight_the_landmark_score_alone_decides() -> None:
    lm = np.array([0.2, 0.6, 0.97], np.float32)
    np.testing.assert_array_equal(plate_score(lm, np.array([0.9, 0.9, 0.1]), 0.0), lm)
    assert landmark_config(_model().config).det_weight == 0.0   # a bundle before 3.0.0 has no such key


def test_the_detector_score_moves_the_plate_score_in_logit_space() -> None:
    # logit(0.6) + 1 * logit(0.9) = log(1.5 * 9): odds multiply
    assert plate_score(0.6, 0.9, 1.0) == pytest.approx(13.5 / 14.5)
    assert plate_score(0.6, 0.5, 1.0) == pytest.approx(0.6)         # an undecided detector changes nothing
    assert plate_score(0.6, 0.1, 0.5) < 0.6 < plate_score(0.6, 0.9, 0.5) < plate_score(0.6, 0.9, 1.0)


def test_refine_keeps_a_doubted_plate_the_detector_is_sure_of_only_with_a_weight() -> None:
    img = np.zeros((300, 400, 3), np.uint8)
    dets = [Detection((100.0, 100.0, 160.0, 115.0), 0.9), Detection((300.0, 10.0, 360.0, 25.0), 0.2)]
    assert _model().refine(img, dets) == []                         # 0.6 < 0.7
    kept = _model(det_weight=1.0).refine(img, dets)
    assert [f.box for f in kept] == [dets[0].box]                   # 0.93 kept; 0.6 * 0.2 odds: 0.27 dropped
    assert kept[0].score == pytest.approx(13.5 / 14.5, rel=1e-5)
