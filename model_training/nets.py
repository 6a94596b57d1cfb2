"""Plate network architectures (GluonCV/MXNet). mxnet is imported here, by the training modules that
build, train and export these nets (``train.py``, ``build.py``, ``export.py``), and, outside training,
only by the mxnet inference backend (``model_store/backends/mxnet_backend.py``).

Registry: ``get_net(name)`` raises ValueError listing the valid names.

* ``ssd_mnet025_fpn``: GluonCV MobileNet-0.25 backbone, stride 8/16/32 taps joined top-down
  (FPN-lite), an extra stride-64 level, SSD-style per-level heads (class logit + 4 box offsets
  per anchor shape). Fully convolutional: any input whose sides are multiples of 32.
* ``ssd_mnet050_fpn``: the same with MobileNet-0.5 (twice the channels, ~3x the compute).
* ``ssd_mnet025_fpn_sq``: ``ssd_mnet025_fpn`` with a fourth anchor shape per width, w/h = 1: half the plates
  labelled in the Kaggle and Open Images photos are boxes under 1.5 wide per high (US and Brazilian plates seen
  at an angle, square, two-line and motorcycle plates), which the w/h 2-5 anchors overlap under IoU 0.5.
* ``ssd_mnet025_fpn_pt``, ``ssd_mnet050_fpn_pt``, ``ssd_mnet075_fpn_pt``, ``ssd_mnetv2_fpn_pt``: the square-anchor
  detector (``_sq`` anchors) on MobileNet v1 0.25 / 0.5 / 0.75 or v2 1.0 run as the TF-slim nets were trained
  (ReLU6, TF 'SAME' padding: see :func:`tf_layers`), so that the ImageNet weights of ``../shared/pretrained``
  (``model_training.pretrained.copy_backbone``) mean what they meant there. Their input is
  ``(x - 128) / 128`` RGB (mean = std = 128/255), not the ImageNet mean/std of the other detectors.
* ``landmark_cnn``: a small CNN on the expanded crop with two heads: 4 corners (8 numbers,
  crop-normalised) and plate / not-a-plate logits.
* ``landmark_mnet025_pt``, ``landmark_mnet050_pt``: the same two heads on a MobileNet v1 0.25 / 0.5 body run as
  TF-slim runs it, which starts from the ImageNet weights (input ``(x - 128) / 128``, as the ``_pt`` detectors).
"""

from __future__ import annotations

from typing import Any

import mxnet as mx
from gluoncv.model_zoo import get_model
from gluoncv.model_zoo.mobilenet import LinearBottleneck
from gluoncv.nn import ReLU6
from mxnet.gluon import HybridBlock, nn

# Anchor shapes (w, h) in network-input pixels, per level, for plates: widths x (w/h) ratios, per detector.
PLATE_RATIOS = (2.0, 3.5, 5.0)
SQUARE_RATIOS = (1.0, 2.0, 3.5, 5.0)
LEVEL_WIDTHS = {8: (20, 36), 16: (56, 90), 32: (140, 220), 64: (320, 480)}
DETECTOR_RATIOS = {"ssd_mnet025_fpn": PLATE_RATIOS, "ssd_mnet050_fpn": PLATE_RATIOS,
                   "ssd_mnet025_fpn_sq": SQUARE_RATIOS, "ssd_mnet025_fpn_pt": SQUARE_RATIOS,
                   "ssd_mnet050_fpn_pt": SQUARE_RATIOS, "ssd_mnet075_fpn_pt": SQUARE_RATIOS,
                   "ssd_mnetv2_fpn_pt": SQUARE_RATIOS}
# Per GluonCV backbone: the index of the last ``features`` layer at stride 8, 16 and 32, and the channels there.
# v2 stops at its 320-channel block (the 1280-channel 1x1 conv after it only feeds the classifier).
BACKBONES = {
    "mobilenet0.25": ((32, 68, 80), (64, 128, 256)),
    "mobilenet0.5": ((32, 68, 80), (128, 256, 512)),
    "mobilenet0.75": ((32, 68, 80), (192, 384, 768)),
    "mobilenetv2_1.0": ((8, 15, 19), (32, 96, 320)),
}
DEFAULT_DETECTOR = "ssd_mnet025_fpn"


def default_levels(arch: str = DEFAULT_DETECTOR) -> list[dict[str, Any]]:
    """The anchor levels of detector ``arch``: per stride, its widths x its w/h ratios (width-major)."""
    try:
        ratios = DETECTOR_RATIOS[arch]
    except KeyError:
        raise ValueError(f"unknown detector {arch!r}; valid detectors: {', '.join(DETECTOR_RATIOS)}") from None
    return [
        {"stride": s, "anchors": [[float(w), round(w / r, 2)] for w in widths for r in ratios]}
        for s, widths in LEVEL_WIDTHS.items()
    ]


class PadBottomRight(HybridBlock):
    """One zero row below and one column right: TF 'SAME' before a stride-2 3x3 conv on even sides."""

    def hybrid_forward(self, F, x):
        return F.pad(x, mode="constant", pad_width=(0, 0, 0, 0, 0, 1, 0, 1))


def tf_layers(layer: HybridBlock) -> list[HybridBlock]:
    """``layer`` (of a GluonCV MobileNet) as the TF-slim MobileNets run it: ReLU becomes ReLU6, and a strided
    conv pads bottom/right only (TF 'SAME' on even sides, so inputs whose sides are multiples of 32) instead
    of GluonCV's symmetric padding, which shifts every stride-2 layer by a pixel. The layers keep their
    parameters; LinearBottleneck blocks are changed inside."""
    if isinstance(layer, nn.Activation) and layer._act_type == "relu":
        return [ReLU6()]
    if isinstance(layer, nn.Conv2D) and tuple(layer._kwargs["stride"]) != (1, 1):
        if tuple(layer._kwargs["kernel"]) != (3, 3) or tuple(layer._kwargs["pad"]) != (1, 1):
            raise ValueError(f"{layer.name}: only 3x3 convs with padding 1 are converted to TF 'SAME'")
        layer._kwargs["pad"] = (0, 0)
        return [PadBottomRight(), layer]
    if isinstance(layer, LinearBottleneck):
        layer.out = tf_sequential(layer.out)
    return [layer]


def tf_sequential(seq: nn.HybridSequential) -> nn.HybridSequential:
    """A HybridSequential of ``seq``'s layers through :func:`tf_layers`."""
    out = nn.HybridSequential(prefix="")
    for layer in seq:
        for converted in tf_layers(layer):
            out.add(converted)
    return out


def _conv_bn(channels: int, kernel: int = 3, stride: int = 1, groups: int = 1, relu: bool = True
             ) -> nn.HybridSequential:
    blk = nn.HybridSequential()
    blk.add(nn.Conv2D(channels, kernel, stride, kernel // 2, groups=groups, use_bias=False))
    blk.add(nn.BatchNorm())
    if relu:
        blk.add(nn.Activation("relu"))
    return blk


def _sep_conv(in_ch: int, out_ch: int, stride: int = 1) -> nn.HybridSequential:
    blk = nn.HybridSequential()
    blk.add(_conv_bn(in_ch, 3, stride, groups=in_ch))
    blk.add(_conv_bn(out_ch, 1))
    return blk


class SSDFPN(HybridBlock):
    """Backbone taps -> FPN-lite -> per-level heads. Outputs [cls_0, box_0, cls_1, box_1, ...]."""

    def __init__(self, backbone: str, num_anchors: list[int], width: int = 64, tf_same: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        base = get_model(backbone, pretrained=False).features
        ends, channels = BACKBONES[backbone]
        with self.name_scope():
            self.stage3 = nn.HybridSequential()
            self.stage4 = nn.HybridSequential()
            self.stage5 = nn.HybridSequential()
            for i, layer in enumerate(base):
                if i > ends[2]:
                    break
                stage = self.stage3 if i <= ends[0] else self.stage4 if i <= ends[1] else self.stage5
                for converted in (tf_layers(layer) if tf_same else [layer]):
                    stage.add(converted)
            self.lat3 = _conv_bn(width, 1)
            self.lat4 = _conv_bn(width, 1)
            self.lat5 = _conv_bn(width, 1)
            self.smooth3 = _sep_conv(width, width)
            self.smooth4 = _sep_conv(width, width)
            self.extra6 = _sep_conv(channels[2], width, stride=2)
            self.cls_heads = nn.HybridSequential()
            self.box_heads = nn.HybridSequential()
            for a in num_anchors:
                self.cls_heads.add(nn.Conv2D(a, 3, 1, 1))
                self.box_heads.add(nn.Conv2D(4 * a, 3, 1, 1))

    def hybrid_forward(self, F, x):
        c3 = self.stage3(x)
        c4 = self.stage4(c3)
        c5 = self.stage5(c4)
        p5 = self.lat5(c5)
        p4 = self.smooth4(self.lat4(c4) + F.UpSampling(p5, scale=2, sample_type="nearest"))
        p3 = self.smooth3(self.lat3(c3) + F.UpSampling(p4, scale=2, sample_type="nearest"))
        p6 = self.extra6(c5)
        outs = []
        for i, p in enumerate((p3, p4, p5, p6)):
            outs.append(self.cls_heads[i](p))
            outs.append(self.box_heads[i](p))
        return tuple(outs)


class LandmarkCNN(HybridBlock):
    """Crop (3 x 64 x 128) -> corners (8,) and plate logits (2,)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        with self.name_scope():
            self.body = nn.HybridSequential()
            self.body.add(_conv_bn(16, 3, 2))          # 32 x 64
            self.body.add(_conv_bn(32, 3, 1))
            self.body.add(_conv_bn(32, 3, 2))          # 16 x 32
            self.body.add(_conv_bn(64, 3, 1))
            self.body.add(_conv_bn(64, 3, 2))          # 8 x 16
            self.body.add(_conv_bn(96, 3, 1))
            self.body.add(_conv_bn(128, 3, 2))         # 4 x 8
            self.body.add(_conv_bn(128, 3, 2))         # 2 x 4
            self.fc = nn.HybridSequential()
            self.fc.add(nn.Flatten())
            self.fc.add(nn.Dense(256))
            self.fc.add(nn.Activation("relu"))
            self.corners = nn.Dense(8)
            self.plate = nn.Dense(2)

    def hybrid_forward(self, F, x):
        h = self.fc(self.body(x))
        return self.corners(h), self.plate(h)


def leaves(block: HybridBlock) -> list[HybridBlock]:
    """The blocks without children inside ``block`` (itself if it has none), in the order it runs them."""
    if not block._children:
        return [block]
    return [leaf for child in block._children.values() for leaf in leaves(child)]


class LandmarkMNet(HybridBlock):
    """Crop (3 x 64 x 128) -> corners (8,) and plate logits (2,), on a GluonCV MobileNet v1 body (all of it up to
    stride 32: 2 x 4 cells on a 64 x 128 crop) run as TF-slim runs it (``tf_layers``), so that the ImageNet
    weights of ``../shared/pretrained`` load into it (``pretrained.copy_backbone``); the heads are
    :class:`LandmarkCNN`'s. Crops must have sides that are multiples of 32 (TF 'SAME')."""

    def __init__(self, backbone: str = "mobilenet0.25", hidden: int = 256, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        base = get_model(backbone, pretrained=False).features
        last = BACKBONES[backbone][0][2]
        with self.name_scope():
            self.body = nn.HybridSequential()
            for i, layer in enumerate(base):
                if i > last:
                    break
                for converted in tf_layers(layer):
                    self.body.add(converted)
            # The imported batch norms are the TFLite nets' folded ones (scale 1, mean 0, var 1: an added bias).
            # Normalised by batch statistics in training they would rescale every channel and throw away what
            # ImageNet taught; kept on their running statistics the body computes the pretrained features
            # (measured: a linear probe on them separates plate crops from mined non-plates at 0.82, while a
            # fine-tune with batch statistics stayed at the class prior for 1,600 iterations).
            for block in leaves(self.body):
                if isinstance(block, nn.BatchNorm):
                    block._kwargs["use_global_stats"] = True
            # batch-normalised before each ReLU: on the ImageNet features (ReLU6, 2 x 4 x 256 of them) a plain
            # Dense + ReLU started with corner outputs ~10x too large, and Adam's first steps killed its units
            # (corners stuck at their mean, plate score at the prior: measured, 1,600 iterations). Each head
            # has its own hidden layer: shared, the corner loss's large early gradients drowned the plate score's.
            self.reduce = _conv_bn(96, 1)
            self.corner_fc = self._hidden(hidden)
            self.plate_fc = self._hidden(hidden)
            self.corners = nn.Dense(8)
            self.plate = nn.Dense(2)

    @staticmethod
    def _hidden(units: int) -> nn.HybridSequential:
        fc = nn.HybridSequential()
        fc.add(nn.Flatten())
        fc.add(nn.Dense(units, use_bias=False))
        fc.add(nn.BatchNorm())
        fc.add(nn.Activation("relu"))
        fc.add(nn.Dropout(0.2))
        return fc

    def hybrid_forward(self, F, x):
        f = self.reduce(self.body(x))
        return self.corners(self.corner_fc(f)), self.plate(self.plate_fc(f))


LANDMARK_BACKBONES = {"landmark_mnet025_pt": "mobilenet0.25", "landmark_mnet050_pt": "mobilenet0.5"}


def _ssd(backbone: str, arch: str, tf_same: bool = False) -> SSDFPN:
    return SSDFPN(backbone, [len(level["anchors"]) for level in default_levels(arch)], tf_same=tf_same)


_NETS = {
    "ssd_mnet025_fpn": lambda: _ssd("mobilenet0.25", "ssd_mnet025_fpn"),
    "ssd_mnet050_fpn": lambda: _ssd("mobilenet0.5", "ssd_mnet050_fpn"),
    "ssd_mnet025_fpn_sq": lambda: _ssd("mobilenet0.25", "ssd_mnet025_fpn_sq"),
    "ssd_mnet025_fpn_pt": lambda: _ssd("mobilenet0.25", "ssd_mnet025_fpn_pt", tf_same=True),
    "ssd_mnet050_fpn_pt": lambda: _ssd("mobilenet0.5", "ssd_mnet050_fpn_pt", tf_same=True),
    "ssd_mnet075_fpn_pt": lambda: _ssd("mobilenet0.75", "ssd_mnet075_fpn_pt", tf_same=True),
    "ssd_mnetv2_fpn_pt": lambda: _ssd("mobilenetv2_1.0", "ssd_mnetv2_fpn_pt", tf_same=True),
    "landmark_cnn": LandmarkCNN,
    "landmark_mnet025_pt": lambda: LandmarkMNet("mobilenet0.25"),
    "landmark_mnet050_pt": lambda: LandmarkMNet("mobilenet0.5"),
}


def net_names() -> list[str]:
    return sorted(_NETS)


def get_net(name: str) -> HybridBlock:
    try:
        factory = _NETS[name]
    except KeyError:
        raise ValueError(f"unknown network {name!r}; valid networks: {', '.join(net_names())}") from None
    return factory()


def init_net(net: HybridBlock, seed: int = 0) -> HybridBlock:
    mx.random.seed(seed)
    net.initialize(mx.init.Xavier(magnitude=2), ctx=mx.cpu())
    return net
