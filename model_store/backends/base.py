"""Backend base: load a graph from exported files, run it on arrays."""

from __future__ import annotations

import abc
from pathlib import Path

import numpy as np


class Graph(abc.ABC):
    """One loaded network. ``run`` takes a float32 NCHW batch and returns its outputs in order."""

    @abc.abstractmethod
    def run(self, x: np.ndarray) -> list[np.ndarray]:
        ...


class Backend(abc.ABC):
    name: str = "base"

    def __init__(self, threads: int = 0) -> None:
        self.threads = threads

    @abc.abstractmethod
    def load(self, files: dict[str, Path]) -> Graph:
        """``files`` has keys ``symbol``, ``params`` and ``onnx`` (paths in the model folder)."""
