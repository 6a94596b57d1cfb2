"""The 2.0 recipe's starting points: the 1.10.0 landmark weights as Gluon weights, the pretrained input scaling."""

import warnings

import numpy as np
import pytest

mx = pytest.importorskip("mxnet")

from model_store.training.nets import get_net  # noqa: E402
from model_store.training.pretrained import PRETRAINED_MEAN, PRETRAINED_STD  # noqa: E402
from model_store.training.recipe2 import (  # noqa: E402
    DETECTOR_ARCH,
    RECIPE_V2,
    SHIPPED_1_10,
    config_v2,
    params_from_bundle,
)


def test_bundle_landmark_weights_load_into_the_gluon_net_with_the_same_outputs(tmp_path):
    if not (SHIPPED_1_10 / "landmarks-0000.params").is_file():
        pytest.skip(f"no 1.10.0 bundle at {SHIPPED_1_10}")
    arch = config_v2()["landmarks"]["arch"]
    out = params_from_bundle(SHIPPED_1_10, "landmarks", arch, tmp_path / "lm.params")
    net = get_net(arch)
    net.load_parameters(str(out), ctx=mx.cpu())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported = mx.gluon.SymbolBlock.imports(str(SHIPPED_1_10 / "landmarks-symbol.json"), ["data"],
                                                str(SHIPPED_1_10 / "landmarks-0000.params"), ctx=mx.cpu())
    x = mx.nd.array(np.random.default_rng(0).normal(0, 1, (2, 3, 64, 128)))
    for a, b in zip(net(x), exported(x), strict=True):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-4, atol=1e-5)


def test_bundle_weights_of_another_net_are_refused(tmp_path):
    if not (SHIPPED_1_10 / "detector-0000.params").is_file():
        pytest.skip(f"no 1.10.0 bundle at {SHIPPED_1_10}")
    with pytest.raises(ValueError, match="lacks"):
        params_from_bundle(SHIPPED_1_10, "detector", "landmark_cnn", tmp_path / "x.params")


def test_the_2_0_detector_config_uses_the_pretrained_input_scaling():
    cfg = config_v2("2.0.0")
    assert cfg["version"] == "2.0.0" and cfg["detector"]["arch"] == DETECTOR_ARCH
    assert cfg["detector"]["mean"] == list(PRETRAINED_MEAN) and cfg["detector"]["std"] == list(PRETRAINED_STD)
    assert RECIPE_V2["det-a"]["arch"] == DETECTOR_ARCH and RECIPE_V2["lm-b"]["hard_negatives"] == "hard_negatives-2.json"
