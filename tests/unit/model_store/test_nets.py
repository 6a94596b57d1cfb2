"""Every registered architecture builds, runs and exports with random weights; the detector's
anchor layout matches what the runtime expects; both backends agree on the exported graphs."""

import numpy as np
import pytest

mx = pytest.importorskip("mxnet")

from model_store.export import write_bundle  # noqa: E402
from model_store.nets import get_net, init_net, net_names  # noqa: E402
from model_store.runtime import anchors_for, flatten_outputs, load_model  # noqa: E402
from model_store.train import default_config  # noqa: E402


def test_unknown_net_lists_valid_names():
    with pytest.raises(ValueError, match="ssd_mnet025_fpn"):
        get_net("resnet9000")


@pytest.mark.parametrize("name", net_names())
def test_every_net_builds_and_runs(name):
    net = init_net(get_net(name))
    if name.startswith("ssd"):
        cfg = default_config()["detector"]
        out = net(mx.nd.zeros((1, 3, 128, 192)))
        assert len(out) == 2 * len(cfg["levels"])
        logits, offsets = flatten_outputs([o.asnumpy() for o in out], len(cfg["levels"]))
        assert logits.shape[0] == offsets.shape[0] == anchors_for(cfg["levels"], 128, 192).shape[0]
    else:
        corners, logits = net(mx.nd.zeros((3, 3, 64, 128)))
        assert corners.shape == (3, 8) and logits.shape == (3, 2)


@pytest.fixture(scope="module")
def random_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle")
    cfg = default_config(version="0.0.1-test")
    write_bundle(out, init_net(get_net("ssd_mnet025_fpn"), seed=1), init_net(get_net("landmark_cnn"), seed=2), cfg)
    return out


def test_export_writes_symbol_params_and_onnx(random_bundle):
    names = {p.name for p in random_bundle.iterdir()}
    for part in ("detector", "landmarks"):
        assert {f"{part}-symbol.json", f"{part}-0000.params", f"{part}.onnx"} <= names
    assert "model.json" in names


def test_backends_agree_on_raw_outputs(random_bundle):
    onnx_model = load_model(random_bundle, backend="onnx")
    mx_model = load_model(random_bundle, backend="mxnet")
    rng = np.random.default_rng(0)
    for shape in [(1, 3, 384, 640), (1, 3, 480, 640)]:
        x = rng.normal(size=shape).astype(np.float32)
        for a, b in zip(onnx_model.detector.run(x), mx_model.detector.run(x), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)
    crops = rng.normal(size=(4, 3, 64, 128)).astype(np.float32)
    for a, b in zip(onnx_model.landmarks.run(crops), mx_model.landmarks.run(crops), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)
