"""Inference backends: each runs an exported graph on float32 NCHW arrays and returns arrays.

``get_backend(name)`` fails loudly with the valid names. Only ``mxnet_backend`` imports mxnet;
only ``onnx_backend`` imports onnxruntime. The names (:data:`BACKENDS`) and the default
(:data:`DEFAULT_BACKEND`) are defined here once; settings and command-line choices use them.

To add a backend: a ``<name>_backend.py`` module here with a :class:`Backend` subclass (``load`` the
bundle's files of one part, return a :class:`Graph` whose ``run`` maps arrays to arrays), and one line
in ``_BACKENDS`` below.
"""

from __future__ import annotations

from model_store.backends.base import Backend, Graph

_BACKENDS = {
    "onnx": ("model_store.backends.onnx_backend", "OnnxBackend"),
    "onnx-cpu": ("model_store.backends.onnx_backend", "OnnxCpuBackend"),
    "mxnet": ("model_store.backends.mxnet_backend", "MxnetBackend"),
}
BACKENDS = tuple(_BACKENDS)
"""Backend names, the default first (the order command-line help shows them in)."""
DEFAULT_BACKEND = "onnx"


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


def get_backend(name: str, threads: int = 0) -> Backend:
    module_name, class_name = _BACKENDS[check_backend(name)]
    import importlib

    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(threads=threads)


def check_backend(name: str) -> str:
    """``name`` when it is a backend, else ValueError listing the valid ones (settings validators use it)."""
    if name not in _BACKENDS:
        raise ValueError(f"unknown model backend {name!r}; valid backends: {', '.join(backend_names())}")
    return name


__all__ = ["BACKENDS", "DEFAULT_BACKEND", "Backend", "Graph", "backend_names", "check_backend", "get_backend"]
