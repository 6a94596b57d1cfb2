"""The ONNX Runtime backends' providers: ``onnx`` takes CUDA when the installed runtime has it, then CPU;
``onnx-cpu`` never leaves the CPU. (No GPU here: CUDA itself is not exercised.)"""

from __future__ import annotations

import onnxruntime as ort
import pytest

from model_store.backends import BACKENDS, get_backend
from model_store.runtime import load_model


def test_onnx_cpu_is_a_backend_name():
    assert "onnx-cpu" in BACKENDS and get_backend("onnx-cpu").providers == ("CPUExecutionProvider",)


@pytest.mark.parametrize("backend", ["onnx", "onnx-cpu"])
def test_sessions_use_the_installed_providers_in_order(backend):
    model = load_model(backend=backend)
    used = model.detector.session.get_providers()
    assert used[-1] == "CPUExecutionProvider"
    if backend == "onnx-cpu" or "CUDAExecutionProvider" not in ort.get_available_providers():
        assert used == ["CPUExecutionProvider"]
    else:
        assert used[0] == "CUDAExecutionProvider"
    assert model.backend == backend
