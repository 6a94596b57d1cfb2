"""Training smoke tests on a tiny generated set: the loss goes down, checkpoints resume."""

import itertools
import json
import threading

import numpy as np
import pytest

pytest.importorskip("mxnet")

from model_training.augment import Photo  # noqa: E402
from model_training.synth import synth_scene  # noqa: E402
from model_training.train import (  # noqa: E402
    TrainOptions,
    _prefetch,
    default_config,
    train_detector,
    train_landmarks,
)

pytestmark = pytest.mark.slow


def _backgrounds(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    out = []
    for _ in range(n):
        h, w = 240, 320
        base = np.linspace(rng.uniform(30, 200), rng.uniform(30, 200), h)[:, None, None]
        img = np.broadcast_to(base, (h, w, 3)) + rng.normal(0, 12, (h, w, 3))
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def tiny_photos():
    rng = np.random.default_rng(0)
    photos = []
    for bg in _backgrounds(12, rng):
        img, corners = synth_scene(rng, bg, max_plates=2, width_range=(0.2, 0.4))
        corners = np.asarray(corners, np.float32).reshape(-1, 4, 2)
        boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
        photos.append(Photo(img, boxes.astype(np.float32), corners, "generated"))
    return photos


def _losses(run_dir, key):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r[key] for r in rows], [r["iteration"] for r in rows]


def test_detector_loss_goes_down_and_resumes(tmp_path, tiny_photos):
    cfg = default_config()
    cfg["detector"]["long_side"] = 320
    opts = TrainOptions(tmp_path / "det", iterations=40, batch_size=4, lr=2e-3, warmup=5, checkpoint_every=20)
    train_detector(tiny_photos, cfg, opts, synth_p=0.0, crop=128)
    losses, its = _losses(tmp_path / "det", "cls_loss")
    assert its[-1] == 40
    assert losses[-1] < losses[0]
    assert (tmp_path / "det" / "curves.png").is_file()
    # resume: a longer run starts from the checkpoint at 40, not from 0
    opts.iterations = 60
    train_detector(tiny_photos, cfg, opts, synth_p=0.0, crop=128)
    _, its = _losses(tmp_path / "det", "cls_loss")
    assert its == [20, 40, 60]
    assert json.loads((tmp_path / "det" / "checkpoint" / "state.json").read_text())["iteration"] == 60


def test_landmark_loss_goes_down(tmp_path, tiny_photos):
    cfg = default_config()
    opts = TrainOptions(tmp_path / "lm", iterations=60, batch_size=16, lr=2e-3, warmup=5, checkpoint_every=60)
    train_landmarks(tiny_photos, cfg, opts, synth_p=0.0)
    losses, _ = _losses(tmp_path / "lm", "corner_loss")
    assert losses[-1] < losses[0]


def test_batch_prefetching_stops_with_the_training_run() -> None:
    # a prefetch thread left running after its run would build batches beside the next one's work
    counter = itertools.count(1)
    with _prefetch(lambda: (next(counter),)) as next_batch:
        assert next_batch() == (1,) and next_batch() == (2,)
    assert not [t for t in threading.enumerate() if t.name == "batch-prefetch" and t.is_alive()]
