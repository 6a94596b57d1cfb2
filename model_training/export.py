"""Export trained nets to a bundle folder: MXNet symbol + params and ONNX, plus ``model.json``."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as np
from mxnet.gluon import HybridBlock

from model_store.backends import backend_files
from model_store.bundle import CONFIG_FILE

logger = logging.getLogger(__name__)


def export_net(net: HybridBlock, out_dir: Path, part: str, input_shape: tuple[int, int, int, int],
               dynamic_hw: bool) -> None:
    """Write the files of the mxnet backend (``{part}-symbol.json``, ``{part}-0000.params``: what ``export``
    writes) and, converted from them, those of the onnx backend (``{part}.onnx``) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    net.hybridize(static_alloc=False)
    net(mx.nd.zeros(input_shape))
    net.export(str(out_dir / part), epoch=0)
    files = backend_files("mxnet")[part] | backend_files("onnx")[part]
    dyn_shape = (None, 3, None, None) if dynamic_hw else (None, *input_shape[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mx.onnx.export_model(
            str(out_dir / files["symbol"]), str(out_dir / files["params"]),
            [input_shape], [np.float32], str(out_dir / files["onnx"]),
            dynamic=True, dynamic_input_shapes=[dyn_shape], verbose=False)
    _drop_initializer_inputs(out_dir / files["onnx"])


def _drop_initializer_inputs(path: Path) -> None:
    """mx2onnx lists weights as graph inputs too; without them ONNX Runtime can fold constants."""
    import onnx

    model = onnx.load(str(path))
    names = {init.name for init in model.graph.initializer}
    keep = [i for i in model.graph.input if i.name not in names]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    onnx.save(model, str(path))


def write_bundle(out_dir: Path, detector: HybridBlock, landmarks: HybridBlock, config: dict[str, Any]) -> Path:
    out_dir = Path(out_dir)
    lm = config["landmarks"]
    export_net(detector, out_dir, "detector", (1, 3, 384, 640), dynamic_hw=True)
    export_net(landmarks, out_dir, "landmarks", (1, 3, lm["input_h"], lm["input_w"]), dynamic_hw=False)
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    logger.info("wrote bundle %s@%s to %s", config["name"], config["version"], out_dir)
    return out_dir
