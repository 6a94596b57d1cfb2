"""``runtime.nms`` keeps exactly the boxes the first implementation kept (one ``box_iou`` row per kept box), on
random boxes with tied scores, touching and degenerate boxes."""

from __future__ import annotations

import numpy as np
import pytest

from model_store.runtime import nms
from plateveil.geometry import box_iou


def nms_reference(boxes: np.ndarray, scores: np.ndarray, iou: float, top_k: int) -> np.ndarray:
    order = np.argsort(-scores)
    keep: list[int] = []
    while order.size and len(keep) < top_k:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        ious = box_iou(boxes[i:i + 1], boxes[order[1:]])[0]
        order = order[1:][ious <= iou]
    return np.asarray(keep, dtype=np.int64)


@pytest.mark.parametrize("seed", range(40))
def test_nms_keeps_what_the_reference_keeps(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(0, 420))
    xy = rng.random((k, 2)) * 300
    wh = rng.random((k, 2)) * 60
    wh[rng.random(k) < 0.05] = 0.0                              # degenerate boxes
    boxes = np.concatenate([xy, xy + wh], axis=1)
    boxes[rng.random(k) < 0.1] = boxes[0] if k else boxes[:0]   # duplicates: IoU exactly 1
    scores = np.round(rng.random(k), 2)                          # ties
    iou, top_k = float(rng.choice([0.3, 0.4, 0.5])), int(rng.integers(1, 40))
    kept = nms(boxes, scores, iou, top_k)
    expected = nms_reference(boxes, scores, iou, top_k)
    assert kept.dtype == expected.dtype and np.array_equal(kept, expected)
    assert len(kept) <= top_k and (k == 0 or len(kept) >= 1)
