"""MXNet backend: the exported symbol + params as a hybridized SymbolBlock (CPU, oneDNN)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from model_store.backends.base import Backend, Graph


class _MxGraph(Graph):
    def __init__(self, block) -> None:
        self.block = block

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        import mxnet as mx

        out = self.block(mx.nd.array(x, dtype="float32"))
        if not isinstance(out, (list, tuple)):
            out = [out]
        return [o.asnumpy() for o in out]


class MxnetBackend(Backend):
    name = "mxnet"
    files = {"symbol": "{part}-symbol.json", "params": "{part}-0000.params"}
    framework = "mxnet-1.9.1/gluoncv-0.10.5"
    requires = ("mxnet",)

    def load(self, files: dict[str, Path]) -> Graph:
        import mxnet as mx

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            block = mx.gluon.SymbolBlock.imports(str(files["symbol"]), ["data"], str(files["params"]), ctx=mx.cpu())
        block.hybridize(static_alloc=True, static_shape=False)
        return _MxGraph(block)
