"""Inference backends: each runs an exported graph on float32 NCHW arrays and returns arrays.

``get_backend(name)`` fails loudly with the valid names. Only ``mxnet_backend`` imports mxnet;
only ``onnx_backend`` imports onnxruntime.
"""

from __future__ import annotations

from model_store.backends.base import Backend, Graph

_BACKENDS = {
    "onnx": ("model_store.backends.onnx_backend", "OnnxBackend"),
    "mxnet": ("model_store.backends.mxnet_backend", "MxnetBackend"),
}


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


def get_backend(name: str, threads: int = 0) -> Backend:
    try:
        module_name, class_name = _BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown model backend {name!r}; valid backends: {', '.join(backend_names())}") from None
    import importlib

    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(threads=threads)


__all__ = ["Backend", "Graph", "backend_names", "get_backend"]
