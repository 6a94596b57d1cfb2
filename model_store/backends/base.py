"""Backend base: a backend names the files it loads for each net of a bundle, loads them into a graph,
and the graph runs on arrays."""

from __future__ import annotations

import abc
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import numpy as np


class Graph(abc.ABC):
    """One loaded network. ``run`` takes a float32 NCHW batch and returns its outputs in order."""

    @abc.abstractmethod
    def run(self, x: np.ndarray) -> list[np.ndarray]:
        ...


class Backend(abc.ABC):
    """A way to run a bundle's nets. A subclass declares what it needs; the runtime, the registry
    (publish, manifest), the cache and the release checks read these declarations, so adding a backend
    is a ``<name>_backend.py`` module and one line in :data:`model_store.backends._BACKENDS`."""

    name: ClassVar[str] = "base"
    files: ClassVar[dict[str, str]] = {}
    """The files of one net: file kind -> file name, ``{part}`` standing for the net (``detector``,
    ``landmarks``). :meth:`load` gets the same kinds as paths."""
    framework: ClassVar[str] = ""
    """How a registry manifest names the format of these files (its ``framework`` field)."""
    requires: ClassVar[tuple[str, ...]] = ()
    """The Python modules :meth:`load` imports (:meth:`installed` looks for them without importing)."""

    def __init__(self, threads: int = 0) -> None:
        self.threads = threads

    @classmethod
    def file_names(cls, part: str) -> dict[str, str]:
        """The files this backend loads for the net ``part``: kind -> file name."""
        return {kind: pattern.format(part=part) for kind, pattern in cls.files.items()}

    @classmethod
    def installed(cls) -> bool:
        return all(importlib.util.find_spec(module) is not None for module in cls.requires)

    @abc.abstractmethod
    def load(self, files: dict[str, Path]) -> Graph:
        """Load one net from ``files`` (the kinds of :attr:`files`, as paths in the bundle folder)."""
