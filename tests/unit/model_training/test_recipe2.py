"""The 2.0 recipe's starting points: the 1.10.0 landmark weights as Gluon weights, the pretrained input scaling."""

import json
import warnings

import numpy as np
import pytest

mx = pytest.importorskip("mxnet")

from model_training.nets import get_net  # noqa: E402
from model_training.pretrained import PRETRAINED_MEAN, PRETRAINED_STD  # noqa: E402
from model_training.recipe2 import (  # noqa: E402
    DETECTOR_ARCH,
    PIPELINE_V2,
    RECIPE_V2,
    SHIPPED_1_10,
    SHIPPED_V2,
    config_v2,
    params_from_bundle,
)


@pytest.mark.parametrize("part", ["landmarks", "detector"])
def test_bundle_weights_load_into_the_gluon_net_with_the_same_outputs(tmp_path, part):
    """The detector holds two prefixed blocks (ssdfpn0_ and GluonCV's mobilenet0_), the landmark CNN one."""
    if not (SHIPPED_1_10 / f"{part}-0000.params").is_file():
        pytest.skip(f"no 1.10.0 bundle at {SHIPPED_1_10}")
    cfg = json.loads((SHIPPED_1_10 / "model.json").read_text())[part]
    shape = (1, 3, 64, 128) if part == "landmarks" else (1, 3, 128, 192)
    get_net(cfg["arch"])   # a first copy in this process: the next one's blocks count from 1
    out = params_from_bundle(SHIPPED_1_10, part, cfg["arch"], tmp_path / "w.params", shape)
    net = get_net(cfg["arch"])
    net.load_parameters(str(out), ctx=mx.cpu())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported = mx.gluon.SymbolBlock.imports(str(SHIPPED_1_10 / f"{part}-symbol.json"), ["data"],
                                                str(SHIPPED_1_10 / f"{part}-0000.params"), ctx=mx.cpu())
    x = mx.nd.array(np.random.default_rng(0).normal(0, 1, (2, *shape[1:])))
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
    assert RECIPE_V2["det-a"]["arch"] == DETECTOR_ARCH and RECIPE_V2["det-a"]["init"] == "imagenet"


def test_each_pipeline_step_uses_only_what_an_earlier_step_made():
    made: set[str] = set()
    for step in PIPELINE_V2:
        if step[0] == "mine":
            assert step[1] in made, step
            made.add(step[2])
            continue
        r = RECIPE_V2[step[1]]
        assert r.get("init_from") is None or r["init_from"] in made, step
        assert all(name in made for name in r.get("hard_negatives", [])), step
        made.add(step[1])
    assert set(SHIPPED_V2) <= made


def test_a_pretrained_landmark_stage_gets_the_pretrained_input_scaling_in_training_and_in_its_bundle():
    from model_training.recipe2 import landmark_arch, landmark_overrides

    assert landmark_arch("lm-p") == "landmark_mnet025_pt" and landmark_arch("lm-c") == "landmark_cnn"
    cfg = config_v2("2.0.0", landmarks="landmark_mnet025_pt")["landmarks"]
    assert cfg["arch"] == "landmark_mnet025_pt"
    assert cfg["mean"] == list(PRETRAINED_MEAN) and cfg["std"] == list(PRETRAINED_STD)
    assert landmark_overrides("landmark_cnn") == {"arch": "landmark_cnn"}
    assert config_v2("2.0.0")["landmarks"]["mean"] != list(PRETRAINED_MEAN)   # the CNN keeps ImageNet mean/std


def test_imagenet_init_fills_a_landmark_body_from_the_pretrained_weights(tmp_path):
    from model_training.pretrained import PRETRAINED, default_pretrained_root, pretrained_net
    from model_training.recipe2 import imagenet_init

    root = default_pretrained_root()
    if not (root / PRETRAINED["mobilenet0.25"].file).is_file():
        pytest.skip(f"no ImageNet MobileNet 0.25 weights under {root} (../shared/pretrained absent; "
                    "set PLATEVEIL_PRETRAINED_DIR)")
    out = imagenet_init("landmark_mnet025_pt", "mobilenet0.25", tmp_path / "init.params", seed=0,
                        input_shape=(1, 3, 64, 128))
    net = get_net("landmark_mnet025_pt")
    net.load_parameters(str(out), ctx=mx.cpu())
    ref = pretrained_net("mobilenet0.25", root)
    x = mx.nd.array(np.random.default_rng(3).normal(0, 1, (2, 3, 64, 128)))
    ours = net.body(x).asnumpy()
    theirs = ref.features[:len(ref.features) - 2](x).asnumpy()   # without the global pool and flatten
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_the_recipe_writes_each_step_and_the_sweep_choice_into_the_bundle_record(tmp_path):
    from model_training.recipe2 import training_record

    for step in PIPELINE_V2:
        if step[0] == "train":
            (tmp_path / step[1]).mkdir()
            (tmp_path / step[1] / "summary.json").write_text(json.dumps(
                {"stage": step[1], "train_photos": 1939, "iterations": RECIPE_V2[step[1]]["iterations"]}))
    tune_dir = tmp_path / "tune"
    tune_dir.mkdir()
    best = {"score_threshold": 0.15, "lm_threshold": 0.9, "recall_08": 0.761, "spurious_per_image": 0.212}
    reference = {"model": "plateveil-plates@1.10.0", "spurious_per_image": 0.218}
    (tune_dir / "sweep.json").write_text(json.dumps({"best": best, "rows": [best], "reference": reference}))
    record = training_record(tmp_path, tune_dir)
    stages = record["training"]["stages"]
    assert list(stages) == [step[1] if step[0] == "train" else f"mine {step[2]}" for step in PIPELINE_V2]
    assert stages["det-a"]["init"] == "imagenet" and stages["det-a"]["train_photos"] == 1939
    assert stages["mine hard_negatives-2c.json"] == {"detector": "det-a3", "min_score": 0.08}
    assert stages["mine hard_negatives-2.json"]["min_score"] == 0.15
    assert record["tuning"]["chosen"] == best and record["tuning"]["reference"] == reference
