"""PlateModel.refine drops a region that encloses a better-scored one when the bundle says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model_store.runtime import Detection, PlateModel


class _Landmarks:
    """Calls every crop a plate, with corners that fail the plausibility check (the box is used)."""

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        n = len(batch)
        return [np.zeros((n, 8), np.float32), np.tile(np.array([[-5.0, 5.0]], np.float32), (n, 1))]


def _model(enclosing_ratio: float) -> PlateModel:
    lm = {"input_w": 128, "input_h": 64, "expand_x": 0.25, "expand_y": 0.6, "min_aspect": 1.0, "max_aspect": 4.0,
          "mean": [0.5] * 3, "std": [0.25] * 3, "score_threshold": 0.5, "keep_detector_above": 1.01,
          "margin_x": 0.0, "margin_y": 0.0, "enclosing_cover": 0.7, "enclosing_ratio": enclosing_ratio}
    return PlateModel(Path("."), {"name": "t", "version": "0", "landmarks": lm}, "onnx", None, _Landmarks())


def test_refine_drops_the_bumper_around_a_plate_and_keeps_the_rest() -> None:
    img = np.zeros((300, 400, 3), np.uint8)
    dets = [Detection((100.0, 100.0, 160.0, 115.0), 0.9),    # the plate
            Detection((80.0, 80.0, 200.0, 160.0), 0.3),      # the bumper around it
            Detection((300.0, 10.0, 360.0, 25.0), 0.2)]      # a region elsewhere
    kept = _model(1.5).refine(img, dets)
    assert [f.box for f in kept] == [dets[0].box, dets[2].box]
    assert len(_model(0).refine(img, dets)) == 3             # off (bundles before 1.7.0 have no such key)
