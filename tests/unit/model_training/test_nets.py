"""Every registered architecture builds, runs and exports with random weights; the detector's
anchor layout matches what the runtime expects; both backends agree on the exported graphs."""

import numpy as np
import pytest

mx = pytest.importorskip("mxnet")

from model_store.runtime import anchors_for, decode_boxes, flatten_outputs, load_model  # noqa: E402
from model_training.export import write_bundle  # noqa: E402
from model_training.nets import get_net, init_net, net_names  # noqa: E402
from model_training.train import adapt_detector_params, average_params, default_config  # noqa: E402


def test_unknown_net_lists_valid_names():
    with pytest.raises(ValueError, match="ssd_mnet025_fpn"):
        get_net("resnet9000")


@pytest.mark.parametrize("name", net_names())
def test_every_net_builds_and_runs(name):
    net = init_net(get_net(name))
    if name.startswith("ssd"):
        cfg = default_config(detector_arch=name)["detector"]
        out = net(mx.nd.zeros((1, 3, 128, 192)))
        assert len(out) == 2 * len(cfg["levels"])
        logits, offsets = flatten_outputs([o.asnumpy() for o in out], len(cfg["levels"]))
        assert logits.shape[0] == offsets.shape[0] == anchors_for(cfg["levels"], 128, 192).shape[0]
    else:
        corners, logits = net(mx.nd.zeros((3, 3, 64, 128)))
        assert corners.shape == (3, 8) and logits.shape == (3, 2)


def test_unknown_detector_has_no_anchor_levels():
    with pytest.raises(ValueError, match="ssd_mnet025_fpn_sq"):
        default_config(detector_arch="ssd_resnet9000")


def test_adapted_detector_params_predict_the_same_boxes_from_the_nearest_anchor_shape(tmp_path):
    """ssd_mnet025_fpn_sq (w/h 1, 2, 3.5, 5 per width) warm-started from ssd_mnet025_fpn (w/h 2, 3.5, 5): every
    anchor shape scores and decodes exactly like its source, the new w/h-1 shape like the w/h-2 one."""
    x = mx.nd.array(np.random.default_rng(0).normal(size=(1, 3, 128, 192)).astype(np.float32))
    old = init_net(get_net("ssd_mnet025_fpn"), seed=3)
    old(x)                                   # shapes are inferred on the first pass
    old.save_parameters(str(tmp_path / "old.params"))
    cfg_old = default_config()["detector"]
    cfg_new = default_config(detector_arch="ssd_mnet025_fpn_sq")["detector"]
    adapted = adapt_detector_params(tmp_path / "old.params", "ssd_mnet025_fpn", "ssd_mnet025_fpn_sq",
                                    tmp_path / "new.params", cfg_new["box_stds"])
    new = get_net("ssd_mnet025_fpn_sq")
    new.load_parameters(str(adapted))        # every shape fits
    h, w = x.shape[2:]
    decoded = []
    for net, cfg in ((old, cfg_old), (new, cfg_new)):
        logits, offsets = flatten_outputs([o.asnumpy() for o in net(x)], len(cfg["levels"]))
        boxes = decode_boxes(anchors_for(cfg["levels"], h, w), offsets, cfg["box_stds"])
        decoded.append((logits, boxes))
    (lo, bo), (ln, bn) = decoded
    start_o = start_n = 0
    for lv_old, lv_new in zip(cfg_old["levels"], cfg_new["levels"], strict=True):
        cells = (-(-h // lv_old["stride"])) * (-(-w // lv_old["stride"]))
        a_old, a_new = len(lv_old["anchors"]), len(lv_new["anchors"])
        assert (a_old, a_new) == (6, 8)
        src = [0, 0, 1, 2, 3, 3, 4, 5]       # width-major: (w1: 1->2, 2, 3.5, 5), (w2: 1->2, 2, 3.5, 5)
        lo_l = lo[start_o:start_o + cells * a_old].reshape(cells, a_old)
        ln_l = ln[start_n:start_n + cells * a_new].reshape(cells, a_new)
        bo_l = bo[start_o:start_o + cells * a_old].reshape(cells, a_old, 4)
        bn_l = bn[start_n:start_n + cells * a_new].reshape(cells, a_new, 4)
        np.testing.assert_allclose(ln_l, lo_l[:, src], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(bn_l, bo_l[:, src], rtol=1e-3, atol=1e-2)
        start_o += cells * a_old
        start_n += cells * a_new
    assert start_n == len(ln)


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


def test_building_flushes_weights_too_small_to_matter(tmp_path):
    """Subnormal products slow the CPU several-fold; weights under 1e-30 change no output, so build zeroes them."""
    from model_training.build import FLUSH_BELOW, load_trained

    x = mx.nd.array(np.random.default_rng(1).normal(size=(2, 3, 64, 128)).astype(np.float32))
    net = init_net(get_net("landmark_cnn"), seed=4)
    net(x)
    w = net.body[0][0].weight
    a = w.data().asnumpy()
    a.flat[:3] = [1e-39, -1e-33, 5e-31]      # a subnormal, two tiny normals
    a.flat[3] = 2e-30                         # kept: above the limit
    w.set_data(mx.nd.array(a))
    before = [o.asnumpy() for o in net(x)]
    net.save_parameters(str(tmp_path / "lm.params"))
    built = load_trained("landmark_cnn", tmp_path / "lm.params")
    b = built.body[0][0].weight.data().asnumpy()
    assert list(b.flat[:3]) == [0.0, 0.0, 0.0] and b.flat[3] == np.float32(2e-30) and FLUSH_BELOW == 1e-30
    np.testing.assert_array_equal(b.flat[4:], a.flat[4:])
    for o, ref in zip(built(x), before, strict=True):
        np.testing.assert_allclose(o.asnumpy(), ref, rtol=1e-6, atol=1e-6)


def test_averaged_params_are_the_mean_of_each_weight_and_load_into_the_net(tmp_path):
    """A "model soup" of two trained copies: every weight (BatchNorm statistics too) is the element-wise mean,
    and the result loads into the same architecture; copies of different networks are refused."""
    x = mx.nd.zeros((2, 3, 64, 128))
    paths = []
    for seed in (1, 2):
        net = init_net(get_net("landmark_cnn"), seed=seed)
        net(x)
        paths.append(tmp_path / f"lm{seed}.params")
        net.save_parameters(str(paths[-1]))
    mean = mx.nd.load(str(average_params(paths, tmp_path / "avg.params")))
    a, b = (mx.nd.load(str(p)) for p in paths)
    assert mean.keys() == a.keys() and any("running_mean" in k for k in mean)
    for k in mean:
        np.testing.assert_allclose(mean[k].asnumpy(), (a[k].asnumpy() + b[k].asnumpy()) / 2, rtol=1e-6, atol=1e-7)
    assert not np.allclose(mean[next(iter(mean))].asnumpy(), a[next(iter(a))].asnumpy())
    get_net("landmark_cnn").load_parameters(str(tmp_path / "avg.params"))

    det = init_net(get_net("ssd_mnet025_fpn"), seed=1)
    det(mx.nd.zeros((1, 3, 128, 192)))
    det.save_parameters(str(tmp_path / "det.params"))
    with pytest.raises(ValueError, match="not the same network"):
        average_params([paths[0], tmp_path / "det.params"], tmp_path / "bad.params")
    with pytest.raises(ValueError, match="at least two"):
        average_params(paths[:1], tmp_path / "one.params")


@pytest.mark.parametrize("name", [n for n in net_names() if n.startswith("ssd") and n.endswith("_pt")])
def test_tf_layout_detectors_export_to_onnx_with_the_same_outputs(tmp_path, name):
    """The ``_pt`` detectors (ReLU6, bottom/right padding before strided convs) survive the ONNX export: ONNX
    Runtime gives MXNet's outputs at the shipped input sizes."""
    from model_store.backends.onnx_backend import OnnxBackend
    from model_training.export import export_net

    net = init_net(get_net(name), seed=3)
    export_net(net, tmp_path, "detector", (1, 3, 384, 640), dynamic_hw=True)
    graph = OnnxBackend(threads=1).load({"onnx": tmp_path / OnnxBackend.file_names("detector")["onnx"]})
    rng = np.random.default_rng(0)
    for shape in [(1, 3, 384, 640), (1, 3, 288, 512)]:
        x = rng.normal(size=shape).astype(np.float32)
        ours = [o.asnumpy() for o in net(mx.nd.array(x))]
        for a, b in zip(graph.run(x), ours, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("name", [n for n in net_names() if n.startswith("landmark_mnet")])
def test_pretrained_landmark_nets_export_to_onnx_with_the_same_outputs(tmp_path, name):
    """The MobileNet-bodied landmark nets (TF layout, two hidden layers) go through the bundle's landmark export
    and ONNX Runtime gives MXNet's corners and plate logits for a batch of crops."""
    from model_store.backends.onnx_backend import OnnxBackend
    from model_training.export import export_net

    net = init_net(get_net(name), seed=5)
    export_net(net, tmp_path, "landmarks", (1, 3, 64, 128), dynamic_hw=False)
    graph = OnnxBackend(threads=1).load({"onnx": tmp_path / OnnxBackend.file_names("landmarks")["onnx"]})
    x = np.random.default_rng(1).normal(size=(5, 3, 64, 128)).astype(np.float32)
    ours = [o.asnumpy() for o in net(mx.nd.array(x))]
    theirs = graph.run(x)
    assert [a.shape for a in theirs[:2]] == [(5, 8), (5, 2)]
    for a, b in zip(theirs, ours, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)


def test_pretrained_landmark_body_keeps_its_batch_norm_statistics_in_training():
    """The imported (folded) batch norms of the MobileNet body run on their running statistics in training too,
    so a training step sees the features the ImageNet weights compute; the heads' own batch norms do not."""
    from mxnet import autograd

    net = init_net(get_net("landmark_mnet025_pt"), seed=6)
    x = mx.nd.array(np.random.default_rng(2).normal(size=(4, 3, 64, 128)))
    net(x)
    rng = np.random.default_rng(4)
    for name, p in net.body.collect_params().items():   # statistics unlike any batch's
        if name.endswith("running_var"):
            p.set_data(mx.nd.array(rng.uniform(1e-3, 1e-2, p.shape)))
    infer = net.body(x).asnumpy()
    assert np.abs(infer).max() > 0.1
    f = mx.nd.array(np.random.default_rng(3).normal(size=(4, 96, 2, 4)))
    with autograd.record(train_mode=True):
        train = net.body(x).asnumpy()
        head = net.plate_fc(f).asnumpy()
    np.testing.assert_allclose(train, infer, rtol=1e-5, atol=1e-5)
    assert not np.allclose(head, net.plate_fc(f).asnumpy(), atol=1e-3)
