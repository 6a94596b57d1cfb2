"""Assemble a bundle from trained parameters: load each net, export symbol+params+ONNX, write model.json."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import mxnet as mx

from model_store.export import write_bundle
from model_store.nets import get_net
from model_store.train import default_config

logger = logging.getLogger(__name__)


def load_trained(arch: str, params: Path) -> mx.gluon.HybridBlock:
    net = get_net(arch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net.load_parameters(str(params), ctx=mx.cpu())
    return net


def build_bundle(detector_params: Path, landmarks_params: Path, out_dir: Path, version: str,
                 name: str = "plateveil-plates", overrides: dict[str, Any] | None = None,
                 extra: dict[str, Any] | None = None) -> Path:
    """``overrides`` = {"detector": {...}, "landmarks": {...}} merged into the default config."""
    config = default_config(name, version)
    for part, values in (overrides or {}).items():
        config[part].update(values)
    config.update(extra or {})
    det = load_trained(config["detector"]["arch"], detector_params)
    lm = load_trained(config["landmarks"]["arch"], landmarks_params)
    out = write_bundle(Path(out_dir), det, lm, config)
    logger.info("bundle %s: %s", out, json.dumps({k: config[k] for k in ("name", "version")}))
    return out
