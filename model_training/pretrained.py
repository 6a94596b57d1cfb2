"""ImageNet-pretrained MobileNet weights for the plate nets, imported from the TFLite files in
``../shared/pretrained`` (google-coral/test_data, Apache-2.0; see its README and the model card).

The files are quantised TF-slim MobileNets: uint8 weights with a per-tensor scale and zero point,
int32 biases, batch norm folded into each conv, NHWC tensors, ReLU6, input ``(x - 128) / 128`` RGB.
Importing them means, per conv, in graph order:

* dequantise: ``w = (q - zero_point) * scale`` (weights and biases alike);
* NHWC -> NCHW: conv ``[out, kh, kw, in] -> [out, in, kh, kw]``, depthwise ``[1, kh, kw, C] -> [C, 1, kh, kw]``;
* folded batch norm: the Gluon conv gets the folded weight, the BatchNorm after it gamma = 1,
  beta = the folded bias, running mean = 0 and running var = 1 - eps (so that it is the identity
  plus the bias, exactly);
* ReLU6 and TF 'SAME' padding (``model_training.nets.tf_layers``): GluonCV's MobileNet v1 uses plain ReLU, and
  GluonCV pads a stride-2 conv symmetrically where TF puts the one extra pixel right/bottom, which shifts
  every stride-2 layer by a pixel. Measured on the 0.25 net's top-1: with GluonCV's padding it calls the cat
  photo a torch (ReLU or ReLU6), with plain ReLU it calls the bird a gallinule (TFLite: chickadee); with both
  changes the first layer matches the TFLite one to within one quantisation step, the 1.0
  embedding has cosine 0.999 with the TFLite one, and every classifier gives the TFLite model's top-5 on
  the check photos up to its uint8 output's ties (tests/unit/model_training/test_pretrained.py runs the
  TFLite interpreter, tflite-runtime, as the reference).

``pretrained_net(name)`` gives a GluonCV ``mobilenet0.25/0.5/0.75/1.0`` or ``mobilenetv2_1.0`` with the
imported weights (1001-way classifier, index 0 = background; ``mobilenet1.0`` is an embedding extractor
without classifier: it outputs the 1024 pooled features). ``copy_backbone(net, name)`` copies those
weights into the backbone of a plate detector from ``model_training.nets``, matching GluonCV parameter
names, and fails listing every parameter it cannot match.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as np
from gluoncv.model_zoo import get_model
from mxnet.gluon import HybridBlock, nn

from model_training.nets import leaves, tf_sequential

logger = logging.getLogger(__name__)

# Beside the repository, like ../shared/data (model_training.data.DEFAULT_DATA_ROOT); a checkout elsewhere (a git
# worktree) names the folder in PLATEVEIL_PRETRAINED_DIR.
DEFAULT_PRETRAINED_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "pretrained"
PRETRAINED_ENV = "PLATEVEIL_PRETRAINED_DIR"


def default_pretrained_root() -> Path:
    """``$PLATEVEIL_PRETRAINED_DIR`` if set, else ``../shared/pretrained`` beside the repository."""
    env = os.environ.get(PRETRAINED_ENV)
    return Path(env) if env else DEFAULT_PRETRAINED_ROOT


@dataclass(frozen=True)
class PretrainedFile:
    file: str
    input_size: int
    classifier: bool


PRETRAINED: dict[str, PretrainedFile] = {
    "mobilenet0.25": PretrainedFile("mobilenet_v1_0.25_128_quant.tflite", 128, True),
    "mobilenet0.5": PretrainedFile("mobilenet_v1_0.5_160_quant.tflite", 160, True),
    "mobilenet0.75": PretrainedFile("mobilenet_v1_0.75_192_quant.tflite", 192, True),
    "mobilenet1.0": PretrainedFile("mobilenet_v1_1.0_224_quant_embedding_extractor.tflite", 224, False),
    "mobilenetv2_1.0": PretrainedFile("mobilenet_v2_1.0_224_quant.tflite", 224, True),
}
NUM_CLASSES = 1001  # index 0 is "background"

# The input the weights expect, (x - 128) / 128 on RGB, as the runtime's (x / 255 - mean) / std.
PRETRAINED_MEAN = [128.0 / 255.0] * 3
PRETRAINED_STD = [128.0 / 255.0] * 3

# GluonCV backbone parameter names: "<net prefix><counter>_<layer path>", e.g. "mobilenet3_conv0_weight",
# "mobilenetv21_features_linearbottleneck4_batchnorm1_gamma". The layer path is what identifies a layer.
_GLUON_PREFIX = re.compile(r"^(mobilenetv2|mobilenet)\d+_")

_TFLITE_UINT8, _TFLITE_INT32 = 3, 2


class PretrainedError(ValueError):
    """The pretrained files are missing, unreadable, or do not fit the network."""


@dataclass(frozen=True)
class TFLiteConv:
    """One CONV_2D / DEPTHWISE_CONV_2D of a TFLite file, dequantised, NCHW."""
    name: str
    depthwise: bool
    stride: int
    weight: np.ndarray  # conv [out, in, kh, kw]; depthwise [C, 1, kh, kw]
    bias: np.ndarray


def pretrained_path(name: str, root: Path | None = None) -> Path:
    try:
        spec = PRETRAINED[name]
    except KeyError:
        raise PretrainedError(f"no pretrained weights for {name!r}; available: {', '.join(PRETRAINED)}") from None
    path = Path(root or default_pretrained_root()) / spec.file
    if not path.is_file():
        raise PretrainedError(f"pretrained weights for {name} not found: {path} (see ../shared/pretrained/README.md)")
    return path


def _dequantise(tensor: Any, model: Any) -> np.ndarray:
    raw = model.Buffers(tensor.Buffer()).DataAsNumpy()
    dtype = {_TFLITE_UINT8: np.uint8, _TFLITE_INT32: np.int32}.get(tensor.Type())
    if dtype is None:
        raise PretrainedError(f"tensor {tensor.Name().decode()}: type {tensor.Type()} is not uint8/int32")
    q = np.frombuffer(raw.tobytes(), dtype=dtype).reshape(tensor.ShapeAsNumpy())
    quant = tensor.Quantization()
    scale, zero = quant.ScaleAsNumpy(), quant.ZeroPointAsNumpy()
    if np.size(scale) != 1 or np.size(zero) != 1:
        raise PretrainedError(f"tensor {tensor.Name().decode()}: expected per-tensor quantisation")
    return ((q.astype(np.float64) - float(np.ravel(zero)[0])) * float(np.ravel(scale)[0])).astype(np.float32)


def read_tflite(path: Path) -> list[TFLiteConv]:
    """Every conv of the file in graph order, dequantised and NCHW (a classifier 1x1 conv included)."""
    import tflite

    buf = Path(path).read_bytes()
    if len(buf) < 8 or buf[4:8] != b"TFL3":  # the flatbuffer file identifier of TFLite models
        raise PretrainedError(f"{path}: not a TFLite model (no TFL3 identifier)")
    model = tflite.Model.GetRootAsModel(buf, 0)
    graph = model.Subgraphs(0)
    if graph is None:
        raise PretrainedError(f"{path}: a TFLite model without a graph")
    convs: list[TFLiteConv] = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        opcode = model.OperatorCodes(op.OpcodeIndex())
        code = max(opcode.BuiltinCode(), opcode.DeprecatedBuiltinCode())
        if code not in (tflite.BuiltinOperator.CONV_2D, tflite.BuiltinOperator.DEPTHWISE_CONV_2D):
            continue
        depthwise = code == tflite.BuiltinOperator.DEPTHWISE_CONV_2D
        wt, bt = graph.Tensors(op.Inputs(1)), graph.Tensors(op.Inputs(2))
        w, b = _dequantise(wt, model), _dequantise(bt, model)
        w = w.transpose(3, 0, 1, 2) if depthwise else w.transpose(0, 3, 1, 2)
        options = (tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions)()
        table = op.BuiltinOptions()
        options.Init(table.Bytes, table.Pos)
        # "MobilenetV1/MobilenetV1/Conv2d_1_depthwise/depthwise_Fold;..." -> "MobilenetV1/.../Conv2d_1_depthwise"
        name = wt.Name().decode().split(";")[0].rsplit("/", 1)[0]
        convs.append(TFLiteConv(name, depthwise, int(options.StrideH()), np.ascontiguousarray(w), b))
    if not convs:
        raise PretrainedError(f"{path}: no convolutions found")
    return convs


def _conv_bn_pairs(block: HybridBlock) -> list[tuple[nn.Conv2D, nn.BatchNorm]]:
    """Every Conv2D followed by its BatchNorm, in the order the block runs them."""
    flat = leaves(block)
    pairs = []
    for i, layer in enumerate(flat):
        if isinstance(layer, nn.Conv2D):
            if i + 1 >= len(flat) or not isinstance(flat[i + 1], nn.BatchNorm):
                raise PretrainedError(f"conv {layer.name} is not followed by a BatchNorm")
            pairs.append((layer, flat[i + 1]))
    return pairs


def _build(name: str) -> HybridBlock:
    if name not in PRETRAINED:
        raise PretrainedError(f"no pretrained weights for {name!r}; available: {', '.join(PRETRAINED)}")
    spec = PRETRAINED[name]
    net = get_model(name, pretrained=False, classes=NUM_CLASSES)
    with net.name_scope():
        if name.startswith("mobilenetv2"):
            # GluonCV's v2 classifier is a bias-free 1x1 conv; the TFLite one has a bias.
            net.output = nn.HybridSequential(prefix="output_")
            with net.output.name_scope():
                net.output.add(nn.Conv2D(NUM_CLASSES, 1, use_bias=True, prefix="pred_"), nn.Flatten())
        elif not spec.classifier:
                del net.output  # (Block refuses a change of type on assignment)
                net.output = nn.HybridSequential(prefix="output_")  # empty: the embedding is the output
        net.features = tf_sequential(net.features)
    net.initialize(mx.init.Zero(), ctx=mx.cpu())
    net(mx.nd.zeros((1, 3, 32, 32)))  # shapes are deferred until a forward
    return net


def pretrained_net(name: str, root: Path | None = None) -> HybridBlock:
    """GluonCV ``name`` with the imported ImageNet weights (input: RGB NCHW, ``(x - 128) / 128``)."""
    convs = read_tflite(pretrained_path(name, root))
    spec = PRETRAINED[name]
    net = _build(name)
    pairs = _conv_bn_pairs(net.features)
    classifier = convs[len(pairs):]
    if len(convs) - len(pairs) != int(spec.classifier):
        raise PretrainedError(f"{name}: the file has {len(convs)} convs, the GluonCV net {len(pairs)} conv+BN pairs"
                              f"{' and a classifier' if spec.classifier else ''}")
    problems = []
    for (conv, bn), src in zip(pairs, convs[:len(pairs)], strict=True):
        if conv.weight.shape != src.weight.shape or conv._kwargs["stride"][0] != src.stride:
            problems.append(f"{conv.name} {conv.weight.shape}/stride {conv._kwargs['stride'][0]} <- "
                            f"{src.name} {src.weight.shape}/stride {src.stride}")
            continue
        conv.weight.set_data(mx.nd.array(src.weight))
        _set_bn(bn, src.bias)
    if classifier:
        src = classifier[0]
        head = net.output if isinstance(net.output, nn.Dense) else net.output[0]
        weight = src.weight.reshape(head.weight.shape)
        if weight.size != src.weight.size or head.weight.shape[0] != NUM_CLASSES:
            problems.append(f"{head.name} {head.weight.shape} <- {src.name} {src.weight.shape}")
        else:
            head.weight.set_data(mx.nd.array(weight))
            head.bias.set_data(mx.nd.array(src.bias))
    if problems:
        raise PretrainedError(f"{name}: {len(problems)} layers do not fit:\n  " + "\n  ".join(problems))
    logger.info("imported %d convs%s into %s", len(pairs), " and the classifier" if classifier else "", name)
    return net


def _set_bn(bn: nn.BatchNorm, bias: np.ndarray) -> None:
    eps = float(bn._kwargs["eps"])
    bn.gamma.set_data(mx.nd.ones_like(bn.gamma.data()))
    bn.beta.set_data(mx.nd.array(bias))
    bn.running_mean.set_data(mx.nd.zeros_like(bn.running_mean.data()))
    bn.running_var.set_data(mx.nd.full(bn.running_var.shape, 1.0 - eps))


def backbone_params(net: HybridBlock) -> dict[str, Any]:
    """The GluonCV backbone parameters of ``net``, keyed by their layer path ("conv0_weight", ...)."""
    return {_GLUON_PREFIX.sub("", p.name): p for p in net.collect_params().values() if _GLUON_PREFIX.match(p.name)}


def copy_backbone(net: HybridBlock, name: str, root: Path | None = None) -> list[str]:
    """Copy the imported weights of GluonCV ``name`` into the backbone of ``net`` (initialised, e.g. by
    ``model_training.nets.init_net``). Every backbone parameter of ``net`` must find a pretrained one of the
    same layer path and shape, or nothing is copied and the error lists them all. Returns the layer paths
    of the pretrained parameters left unused (layers after the detector's last tap, the classifier)."""
    target = backbone_params(net)
    if not target:
        raise PretrainedError(f"{net.name} has no GluonCV MobileNet parameters to copy into")
    source = backbone_params(pretrained_net(name, root))
    missing = sorted(k for k in target if k not in source)
    shapes = sorted(f"{k} {target[k].shape} <- {source[k].shape}"
                    for k in target if k in source and target[k].shape != source[k].shape)
    if missing or shapes:
        raise PretrainedError(
            f"{name} does not fit {net.name}: {len(missing)} unmatched, {len(shapes)} of another shape:\n  "
            + "\n  ".join(missing + shapes))
    for k, p in target.items():
        p.set_data(source[k].data())
    unused = sorted(k for k in source if k not in target)
    logger.info("copied %d pretrained %s parameters into %s; %d unused", len(target), name, net.name, len(unused))
    return unused


def load_rgb(path: Path, size: int) -> np.ndarray:
    """A photo as the pretrained nets see it: RGB resized to size x size, uint8 HWC."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def to_input(rgb: np.ndarray) -> mx.nd.NDArray:
    """uint8 HWC (or NHWC) RGB -> float NCHW ``(x - 128) / 128``."""
    x = (rgb.astype(np.float32) - 128.0) / 128.0
    x = x[None] if x.ndim == 3 else x
    return mx.nd.array(x.transpose(0, 3, 1, 2))


def top_k(net: HybridBlock, rgb: np.ndarray, k: int = 5) -> list[int]:
    """The ``k`` most likely ImageNet classes (1001-way, 0 = background) of one photo."""
    logits = net(to_input(rgb)).asnumpy()[0]
    return [int(i) for i in np.argsort(-logits)[:k]]


def check_report(root: Path | None = None, k: int = 5) -> list[str]:
    """Lines naming each imported net's top-``k`` classes (with probabilities) on the photos of
    ``<root>/check``; for the embedding extractor, the embedding's size. Raises PretrainedError if a file is
    missing or does not fit."""
    root = Path(root or default_pretrained_root())
    check = root / "check"
    labels_path = check / "imagenet_labels.txt"
    if not labels_path.is_file():
        raise PretrainedError(f"no check photos: {labels_path} not found (see ../shared/pretrained/README.md)")
    labels = labels_path.read_text().splitlines()
    photos = sorted(check.glob("*.png"))
    lines = []
    for name, spec in PRETRAINED.items():
        net = pretrained_net(name, root)
        lines.append(f"{name} ({spec.file}, {spec.input_size}x{spec.input_size})")
        for photo in photos:
            out = net(to_input(load_rgb(photo, spec.input_size))).asnumpy()[0]
            if not spec.classifier:
                lines.append(f"  {photo.name}: embedding of {out.size} (no classifier in this file)")
                continue
            prob = np.exp(out - out.max())
            prob /= prob.sum()
            top = np.argsort(-prob)[:k]
            lines.append(f"  {photo.name}: " + ", ".join(f"{labels[i]} {prob[i]:.2f}" for i in top))
    return lines
