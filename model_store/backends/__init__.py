"""Inference backends: each runs an exported graph on float32 NCHW arrays and returns arrays.

``get_backend(name)`` fails loudly with the valid names. Only ``mxnet_backend`` imports mxnet;
only ``onnx_backend`` imports onnxruntime (both when a graph is loaded). The names (:data:`BACKENDS`)
and the default (:data:`DEFAULT_BACKEND`) are defined here once; settings and command-line choices use them.

A backend declares the files it loads (:attr:`Backend.files`, per net of the bundle), and everything that
handles bundle files reads that: :func:`model_store.runtime.load_model`, the registry (which files a
bundle publishes, the manifest's ``framework``), hence the cache (it copies what the manifest lists), the
release checks (``validate_bundle`` loads a bundle with each backend it has files for) and the export.

To add a backend: a ``<name>_backend.py`` module here with a :class:`Backend` subclass (its ``files``,
``framework`` and ``requires``, and ``load`` of one net's files returning a :class:`Graph` whose ``run`` maps
arrays to arrays), and one line in ``_BACKENDS`` below.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from model_store.backends.base import Backend, Graph
from model_store.bundle import PARTS

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


def check_backend(name: str) -> str:
    """``name`` when it is a backend, else ValueError listing the valid ones (settings validators use it)."""
    if name not in _BACKENDS:
        raise ValueError(f"unknown model backend {name!r}; valid backends: {', '.join(backend_names())}")
    return name


def backend_class(name: str) -> type[Backend]:
    """The class of backend ``name`` (its module imports no framework: reading its files is cheap)."""
    module_name, class_name = _BACKENDS[check_backend(name)]
    cls: type[Backend] = getattr(importlib.import_module(module_name), class_name)
    return cls


def get_backend(name: str, threads: int = 0) -> Backend:
    return backend_class(name)(threads=threads)


def backend_files(name: str) -> dict[str, dict[str, str]]:
    """The files backend ``name`` loads from a bundle: net -> {file kind -> file name}."""
    cls = backend_class(name)
    return {part: cls.file_names(part) for part in PARTS}


def bundle_file_names() -> list[str]:
    """Every file some backend loads from a bundle, net by net, each once (model.json not included)."""
    names: dict[str, None] = {}
    for part in PARTS:
        for name in _BACKENDS:
            names.update(dict.fromkeys(backend_class(name).file_names(part).values()))
    return list(names)


def distinct_backends() -> list[str]:
    """One backend per distinct set of files, the first in :data:`BACKENDS` order (``onnx-cpu`` loads the
    files ``onnx`` does: checking a bundle with ``onnx`` covers both)."""
    seen: dict[tuple[tuple[str, str], ...], str] = {}
    for name in _BACKENDS:
        seen.setdefault(tuple(sorted(backend_class(name).files.items())), name)
    return list(seen.values())


def complete_backends(bundle_dir: str | Path) -> list[str]:
    """The backends whose files are all in ``bundle_dir``, in :data:`BACKENDS` order."""
    folder = Path(bundle_dir)
    return [name for name in _BACKENDS
            if all((folder / n).is_file() for files in backend_files(name).values() for n in files.values())]


__all__ = ["BACKENDS", "DEFAULT_BACKEND", "Backend", "Graph", "backend_class", "backend_files", "backend_names",
           "bundle_file_names", "check_backend", "complete_backends", "distinct_backends", "get_backend"]
