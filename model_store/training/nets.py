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
* ``landmark_cnn``: a small CNN on the expanded crop with two heads: 4 corners (8 numbers,
  crop-normalised) and plate / not-a-plate logits.
"""

from __future__ import annotations

from typing import Any

import mxnet as mx
from gluoncv.model_zoo import get_model
from mxnet.gluon import HybridBlock, nn

# Anchor shapes (w, h) in network-input pixels, per level, for plates: widths x (w/h) ratios, per detector.
PLATE_RATIOS = (2.0, 3.5, 5.0)
SQUARE_RATIOS = (1.0, 2.0, 3.5, 5.0)
LEVEL_WIDTHS = {8: (20, 36), 16: (56, 90), 32: (140, 220), 64: (320, 480)}
DETECTOR_RATIOS = {"ssd_mnet025_fpn": PLATE_RATIOS, "ssd_mnet050_fpn": PLATE_RATIOS,
                   "ssd_mnet025_fpn_sq": SQUARE_RATIOS}
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

    def __init__(self, backbone: str, num_anchors: list[int], width: int = 64, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        base = get_model(backbone, pretrained=False).features
        channels = {"mobilenet0.25": (64, 128, 256), "mobilenet0.5": (128, 256, 512)}[backbone]
        with self.name_scope():
            self.stage3 = nn.HybridSequential()
            self.stage4 = nn.HybridSequential()
            self.stage5 = nn.HybridSequential()
            for i, layer in enumerate(base):
                if i <= 32:
                    self.stage3.add(layer)
                elif i <= 68:
                    self.stage4.add(layer)
                elif i <= 80:
                    self.stage5.add(layer)
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


def _ssd(backbone: str, arch: str) -> SSDFPN:
    return SSDFPN(backbone, [len(level["anchors"]) for level in default_levels(arch)])


_NETS = {
    "ssd_mnet025_fpn": lambda: _ssd("mobilenet0.25", "ssd_mnet025_fpn"),
    "ssd_mnet050_fpn": lambda: _ssd("mobilenet0.5", "ssd_mnet050_fpn"),
    "ssd_mnet025_fpn_sq": lambda: _ssd("mobilenet0.25", "ssd_mnet025_fpn_sq"),
    "landmark_cnn": LandmarkCNN,
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
