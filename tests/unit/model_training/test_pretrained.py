"""The ImageNet MobileNets imported from ../shared/pretrained (TFLite) into GluonCV give what the TFLite models
give on the check photos (compared with the TFLite interpreter, tflite-runtime), and their backbone weights go
into the plate detectors' backbones or fail naming what does not fit."""

from pathlib import Path

import numpy as np
import pytest

mx = pytest.importorskip("mxnet")
pytest.importorskip("tflite")

from model_training.nets import get_net, init_net  # noqa: E402
from model_training.pretrained import (  # noqa: E402
    PRETRAINED,
    PretrainedError,
    backbone_params,
    copy_backbone,
    default_pretrained_root,
    load_rgb,
    pretrained_net,
    pretrained_path,
    to_input,
    top_k,
)

ROOT = default_pretrained_root()
CHECK = ROOT / "check"
PHOTOS = ("cat", "grace_hopper", "bird")
CLASSIFIERS = [name for name, spec in PRETRAINED.items() if spec.classifier]
# One quantisation step of the TFLite models' uint8 softmax output is 1/256: classes closer than that tie.
STEP = 1.0 / 256

needs_files = pytest.mark.skipif(
    not (ROOT / PRETRAINED["mobilenet0.25"].file).is_file(),
    reason=f"no pretrained MobileNets at {ROOT} (../shared/pretrained beside the repository, "
           "or set PLATEVEIL_PRETRAINED_DIR)")


@pytest.fixture(scope="module")
def nets():
    """pretrained_net(name), built once per module."""
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = pretrained_net(name)
        return cache[name]
    return get


@pytest.fixture(scope="module")
def labels() -> list[str]:
    return (CHECK / "imagenet_labels.txt").read_text().splitlines()


def _tflite_output(name: str, rgb: np.ndarray) -> np.ndarray:
    interpreter_mod = pytest.importorskip("tflite_runtime.interpreter")
    interp = interpreter_mod.Interpreter(model_path=str(pretrained_path(name)))
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], rgb[None])
    interp.invoke()
    out = interp.get_output_details()[0]
    scale, zero = out["quantization"]
    return (interp.get_tensor(out["index"]).reshape(-1).astype(np.float32) - zero) * scale


@needs_files
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_imported_classifier_gives_the_tflite_models_top5(name, labels, nets):
    net = nets(name)
    for photo in PHOTOS:
        rgb = load_rgb(CHECK / f"{photo}.png", PRETRAINED[name].input_size)
        ref = _tflite_output(name, rgb)  # softmax probabilities, uint8 steps of 1/256
        logits = net(to_input(rgb)).asnumpy()[0]
        ours = np.exp(logits - logits.max())
        ours /= ours.sum()
        ref_top, our_top = np.argsort(-ref)[:5], np.argsort(-ours)[:5]
        what = f"{name} {photo}: TFLite {[labels[i] for i in ref_top]}, imported {[labels[i] for i in our_top]}"
        assert our_top[0] == ref_top[0], what
        # The same top 5 up to the TFLite output's resolution: each of ours is at least the TFLite 5th best
        # (less two steps), and each class the TFLite model puts clearly above its 6th best is in ours.
        fifth, sixth = np.sort(ref)[::-1][[4, 5]]
        assert all(ref[i] >= fifth - 2 * STEP for i in our_top), what
        assert {int(i) for i in ref_top if ref[i] > sixth + 2 * STEP} <= {int(i) for i in our_top}, what
        assert abs(ours[our_top[0]] - ref[our_top[0]]) < 0.1, what


@needs_files
def test_imported_nets_name_the_check_photos(labels, nets):
    """The README's labels, without the interpreter: a cat class for the cat and chickadee for the bird.
    (Grace Hopper is "military uniform" only for 0.75 and v2; the TFLite 0.25 and 0.5 say "academic gown".)"""
    for name in CLASSIFIERS:
        net = nets(name)
        size = PRETRAINED[name].input_size
        cat = labels[top_k(net, load_rgb(CHECK / "cat.png", size), 1)[0]]
        bird = labels[top_k(net, load_rgb(CHECK / "bird.png", size), 1)[0]]
        hopper = [labels[i] for i in top_k(net, load_rgb(CHECK / "grace_hopper.png", size), 5)]
        assert cat in {"tabby, tabby cat", "tiger cat", "Egyptian cat"}, (name, cat)
        assert bird == "chickadee", (name, bird)
        if name in ("mobilenet0.75", "mobilenetv2_1.0"):
            assert hopper[0] == "military uniform", (name, hopper)


@needs_files
def test_imported_embedding_extractor_matches_the_tflite_embedding():
    net = pretrained_net("mobilenet1.0")
    for photo in PHOTOS:
        rgb = load_rgb(CHECK / f"{photo}.png", PRETRAINED["mobilenet1.0"].input_size)
        ref = _tflite_output("mobilenet1.0", rgb)
        ours = net(to_input(rgb)).asnumpy().reshape(-1)
        assert ours.shape == ref.shape == (1024,)
        cosine = float(ours @ ref / np.linalg.norm(ours) / np.linalg.norm(ref))
        assert cosine > 0.995, (photo, cosine)


@needs_files
@pytest.mark.parametrize("arch,backbone,head", [
    ("ssd_mnet025_fpn_pt", "mobilenet0.25", {"dense0_weight", "dense0_bias"}),
    ("ssd_mnetv2_fpn_pt", "mobilenetv2_1.0", {"output_pred_weight", "output_pred_bias", "features_conv1_weight"})])
def test_copy_backbone_gives_the_detector_the_imagenet_features(arch, backbone, head, nets):
    net = init_net(get_net(arch))
    net(mx.nd.zeros((1, 3, 64, 64)))
    unused = copy_backbone(net, backbone)
    ref = nets(backbone)
    copied = backbone_params(net)
    assert copied and all(np.array_equal(p.data().asnumpy(), backbone_params(ref)[k].data().asnumpy())
                          for k, p in copied.items())
    assert head <= set(unused)  # the classifier (and v2's 1280-channel conv) has no place in a detector
    # The stride-8 features are the classifier's own: the same layers, run the same way.
    x = to_input(load_rgb(CHECK / "cat.png", 128))
    feats = x
    for layer in list(ref.features)[:len(net.stage3)]:
        feats = layer(feats)
    assert np.allclose(net.stage3(x).asnumpy(), feats.asnumpy(), atol=1e-5)


@needs_files
def test_copy_backbone_refuses_a_backbone_of_another_width_listing_the_layers():
    net = init_net(get_net("ssd_mnet025_fpn_pt"))
    net(mx.nd.zeros((1, 3, 64, 64)))
    before = {k: p.data().asnumpy().copy() for k, p in backbone_params(net).items()}
    with pytest.raises(PretrainedError, match="0 unmatched, 135 of another shape") as err:
        copy_backbone(net, "mobilenet0.5")
    assert "\n  conv0_weight (8, 3, 3, 3) <- (16, 3, 3, 3)\n" in str(err.value)
    assert all(np.array_equal(before[k], p.data().asnumpy()) for k, p in backbone_params(net).items())


@needs_files
def test_copy_backbone_refuses_a_net_without_a_mobilenet():
    net = init_net(get_net("landmark_cnn"))
    with pytest.raises(PretrainedError, match="no GluonCV MobileNet parameters"):
        copy_backbone(net, "mobilenet0.25")


def test_missing_or_unknown_pretrained_files_say_where_to_look(tmp_path: Path):
    with pytest.raises(PretrainedError, match="not found: .*mobilenet_v1_0.25_128_quant.tflite"):
        pretrained_net("mobilenet0.25", root=tmp_path)
    with pytest.raises(PretrainedError, match="available: mobilenet0.25"):
        pretrained_net("resnet50", root=tmp_path)


def test_a_file_that_is_not_tflite_is_refused(tmp_path: Path):
    (tmp_path / PRETRAINED["mobilenet0.25"].file).write_bytes(b"\0" * 64)
    with pytest.raises(PretrainedError, match="mobilenet_v1_0.25_128_quant.tflite"):
        pretrained_net("mobilenet0.25", root=tmp_path)


@needs_files
def test_cli_prints_each_nets_top5_on_the_check_photos(capsys):
    from plateveil_ops.cli import main

    assert main(["models", "pretrained", "--dir", str(ROOT)]) == 0
    out = capsys.readouterr().out
    blocks = {b.split(" ", 1)[0]: b for b in out.split("\n") if b and not b.startswith(" ")}
    assert set(blocks) == set(PRETRAINED)
    assert "  grace_hopper.png: military uniform 0.9" in out   # v2: 0.93
    assert "  cat.png: embedding of 1024 (no classifier in this file)" in out
    assert out.count("  bird.png: chickadee ") == len(CLASSIFIERS)


def test_cli_without_the_pretrained_folder_says_what_is_missing(tmp_path: Path):
    from plateveil_ops.cli import main

    with pytest.raises(SystemExit, match=r"no check photos: .*check/imagenet_labels.txt not found"):
        main(["models", "pretrained", "--dir", str(tmp_path)])
