"""Assemble a bundle from trained parameters: load each net, export symbol+params+ONNX, write model.json."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import mxnet as mx

from model_training.export import write_bundle
from model_training.nets import DEFAULT_DETECTOR, get_net
from model_training.train import default_config

logger = logging.getLogger(__name__)


# Weights this small contribute nothing to any output, yet the products they make with activations are subnormal
# floats, which the CPU computes many times slower: detector-sq's detector ran 12.4 ms instead of 7.5 ms in ONNX
# Runtime until its 12k subnormal and tiny weights were zeroed.
FLUSH_BELOW = 1e-30


def load_trained(arch: str, params: Path, flush_below: float = FLUSH_BELOW) -> mx.gluon.HybridBlock:
    net = get_net(arch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net.load_parameters(str(params), ctx=mx.cpu())
    flushed = 0
    for p in net.collect_params().values():
        data = p.data()
        tiny = mx.nd.abs(data) < flush_below
        n = int(tiny.sum().asscalar())
        if n:
            p.set_data(mx.nd.where(tiny, mx.nd.zeros_like(data), data))
            flushed += n
    logger.info("%s from %s: %d weights under %g flushed to zero", arch, params, flushed, flush_below)
    return net


def build_bundle(detector_params: Path, landmarks_params: Path, out_dir: Path, version: str,
                 name: str = "plateveil-plates", overrides: dict[str, Any] | None = None,
                 extra: dict[str, Any] | None = None, detector_arch: str = DEFAULT_DETECTOR,
                 flush_below: float = FLUSH_BELOW) -> Path:
    """``overrides`` = {"detector": {...}, "landmarks": {...}} merged into the default config of a bundle
    whose detector is ``detector_arch`` (the architecture ``detector_params`` were trained as); weights under
    ``flush_below`` are zeroed (``load_trained``)."""
    config = default_config(name, version, detector_arch)
    for part, values in (overrides or {}).items():
        config[part].update(values)
    config.update(extra or {})
    det = load_trained(config["detector"]["arch"], detector_params, flush_below)
    lm = load_trained(config["landmarks"]["arch"], landmarks_params, flush_below)
    out = write_bundle(Path(out_dir), det, lm, config)
    logger.info("bundle %s: %s", out, json.dumps({k: config[k] for k in ("name", "version")}))
    return out
