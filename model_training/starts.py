"""The weights a recipe row can start from besides an earlier row: the ImageNet backbones of ``../shared/pretrained``
(``imagenet_init``) and a shipped bundle's exported nets (``params_from_bundle``). Used by the runner
(``runner.py``: inputs ``imagenet`` and ``bundle:<name>``)."""

from __future__ import annotations

import re
from pathlib import Path

BACKBONE = "mobilenet0.25"


def imagenet_init(arch: str, backbone: str, out: Path, seed: int, pretrained_root: Path | None = None,
                  input_shape: tuple[int, ...] = (1, 3, 64, 64)) -> Path:
    """A net's starting weights: ``init_net`` heads (for a detector, the classification bias at the 0.01 prior,
    as ``train_detector`` sets it) and the ImageNet backbone."""
    import mxnet as mx
    import numpy as np

    from model_training.nets import get_net, init_net
    from model_training.pretrained import copy_backbone

    net = init_net(get_net(arch), seed=seed)
    net(mx.nd.zeros(input_shape))
    prior = -float(np.log((1 - 0.01) / 0.01))
    for head in getattr(net, "cls_heads", []):
        head.bias.set_data(mx.nd.full(head.bias.shape, prior))
    copy_backbone(net, backbone, root=pretrained_root)
    out.parent.mkdir(parents=True, exist_ok=True)
    net.save_parameters(str(out))
    return out


def _uncounted(name: str) -> str:
    return re.sub(r"^([A-Za-z]+)\d+_", r"\1_", name)


def params_from_bundle(bundle: Path, part: str, arch: str, out: Path,
                       input_shape: tuple[int, ...] = (1, 3, 64, 128)) -> Path:
    """A bundle's exported ``{part}-0000.params`` (symbol names) as Gluon ``save_parameters`` weights of ``arch``:
    the exported names are the Gluon parameters' full names, matched one to one (same shapes)."""
    import mxnet as mx

    from model_training.nets import get_net, init_net

    net = init_net(get_net(arch), seed=0)
    # names without the counter of their top block (landmarkcnn0_, landmarkcnn1_, ...: by creation order in a
    # process); a GluonCV backbone keeps its own prefix (mobilenet0_), beside the detector's (ssdfpn0_)
    loaded = mx.nd.load(str(bundle / f"{part}-0000.params"))
    by_name = {_uncounted(k.split(":", 1)[1]): v for k, v in loaded.items()}
    params = {_uncounted(name): p for name, p in net.collect_params().items()}
    if len(params) != len(list(net.collect_params().keys())):
        raise ValueError(f"{arch}: parameter names collide without their block counters")
    missing = [name for name in params if name not in by_name]
    if missing:
        raise ValueError(f"{bundle}/{part}-0000.params lacks {len(missing)} parameters of {arch}: {missing[:5]}")
    net(mx.nd.zeros(input_shape))   # the deferred shapes
    for name, p in params.items():
        if p.shape != by_name[name].shape:
            raise ValueError(f"{name}: {p.shape} in {arch}, {by_name[name].shape} in {bundle}")
        p.set_data(by_name[name])
    out.parent.mkdir(parents=True, exist_ok=True)
    net.save_parameters(str(out))
    return out


