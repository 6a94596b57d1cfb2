"""The shipped weights load with both backends, agree with each other, and find plates on photos the
project generates itself (drawn car scenes, and synthetic plates pasted on generated backgrounds)."""

import json

import numpy as np
import pytest

from model_store import bundle
from model_store.bundle import default_model_dir, read_config
from model_store.runtime import load_model
from model_training.evaluate import score_image
from plateveil_ops.samples import render_scene


@pytest.fixture(scope="module")
def model():
    return load_model(backend="onnx")


def test_shipped_bundle_is_a_trained_release(model):
    cfg = read_config(default_model_dir())
    assert "random" not in cfg["version"]
    assert cfg["metrics"]["val"]["overall"]["recall_08"] > 0.5
    assert model.tag == f"{cfg['name']}@{cfg['version']}"


def test_shipped_weights_find_the_plate_on_generated_scenes(model):
    found = 0
    seeds = range(8)
    for seed in seeds:
        scene = render_scene(seed)
        plates, _ = model.find_plates(scene.image_bgr)
        quad = np.asarray(scene.plate_quad)
        box = np.concatenate([quad.min(axis=0), quad.max(axis=0)])[None]
        cov, *_ = score_image(scene.image_bgr.shape[:2], box, [np.asarray(p.polygon) for p in plates])
        found += cov[0] >= 0.5
    assert found >= 6, f"found {found} of {len(seeds)} drawn plates"


def test_backends_agree_on_found_plates(model):
    pytest.importorskip("mxnet")
    mx_model = load_model(backend="mxnet")
    for seed in range(3):
        img = render_scene(100 + seed).image_bgr
        a, _ = model.find_plates(img)
        b, _ = mx_model.find_plates(img)
        assert len(a) == len(b)
        for pa, pb in zip(sorted(a, key=lambda p: p.box), sorted(b, key=lambda p: p.box), strict=True):
            np.testing.assert_allclose(np.asarray(pa.polygon), np.asarray(pb.polygon), atol=1.0)
            assert abs(pa.score - pb.score) < 1e-2


def test_onnx_sessions_do_not_spin_wait(model):
    # spin-waiting pool threads took the cores the Python between runs needs (onnx_backend.py has the numbers)
    for graph in (model.detector, model.landmarks):
        opts = graph.session.get_session_options()
        assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_the_default_bundle_is_the_highest_version_not_the_last_name(tmp_path, monkeypatch):
    for folder, version in [("plateveil-plates-1.9.0", "1.9.0"), ("plateveil-plates-1.10.0", "1.10.0"),
                            ("plateveil-plates-1.2.0", "1.2.0")]:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "model.json").write_text(json.dumps({"version": version}))
    monkeypatch.setattr(bundle, "SHIPPED_DIR", tmp_path)
    assert default_model_dir() == tmp_path / "plateveil-plates-1.10.0"
