"""ONNX Runtime backends: ``onnx`` (CUDA first when the installed onnxruntime has the CUDA provider, i.e. the
``onnxruntime-gpu`` wheel, else CPU) and ``onnx-cpu`` (CPU only, even on a GPU host).

The provider list is ONNX Runtime's own fallback order: with ``CUDAExecutionProvider`` first, nodes CUDA
cannot run go to ``CPUExecutionProvider``. Which GPU a process uses is chosen outside, with
``CUDA_VISIBLE_DEVICES`` (one worker process per GPU; docs/performance.md). The providers a session really
got are logged when it loads. onnxruntime is imported when a graph is loaded, not with this module (the
registry reads the backend's file names without it).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from model_store.backends.base import Backend, Graph

if TYPE_CHECKING:
    import onnxruntime as ort

logger = logging.getLogger(__name__)


class _OnnxGraph(Graph):
    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        return list(self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)}))


class OnnxBackend(Backend):
    name = "onnx"
    files = {"onnx": "{part}.onnx"}
    framework = "onnx"
    requires = ("onnxruntime",)
    providers: tuple[str, ...] = ("CUDAExecutionProvider", "CPUExecutionProvider")  # those installed, in order

    def load(self, files: dict[str, Path]) -> Graph:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if self.threads:
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
        # no spin-waiting: ORT's pool threads otherwise busy-wait after each run, and between runs the Python
        # around them (pre/post-processing, the other graph's own pool, JPEG decode/encode) needs those cores.
        # Measured on 2 cores, find_plates on 100 photos at 1280x720, default threads: p50/p95 34.6/43.4 ms
        # spinning, 24.0/33.6 ms not (scripts/bench/bench.py shows the same)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        available = ort.get_available_providers()
        providers = [p for p in self.providers if p in available] or ["CPUExecutionProvider"]
        session = ort.InferenceSession(str(files["onnx"]), sess_options=opts, providers=providers)
        logger.info("onnxruntime %s session %s: providers %s (installed: %s)", self.name,
                    Path(files["onnx"]).name, session.get_providers(), available)
        return _OnnxGraph(session)


class OnnxCpuBackend(OnnxBackend):
    """ONNX Runtime on the CPU only (a CPU worker on a GPU host; the same numbers as ``onnx`` without a GPU)."""

    name = "onnx-cpu"
    providers = ("CPUExecutionProvider",)
