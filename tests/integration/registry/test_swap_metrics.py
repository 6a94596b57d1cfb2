"""A hot swap and a refused version move the worker's swap metrics and its model_info gauge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from model_store.cache import ModelCache
from model_store.registry import Registry
from workers import metrics as worker_metrics
from workers.hotswap import ModelSwapper

pytestmark = pytest.mark.integration


def _samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = worker_metrics.metrics().registry
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for fam in registry.collect() for s in fam.samples}


def _value(name: str, **labels: str) -> float:
    return _samples().get((name, tuple(sorted(labels.items()))), 0.0)


def test_swaps_failures_and_served_versions_are_counted(registry: Registry, bundle_factory: Any, s3: Any,
                                                        bucket: str, tmp_path: Path) -> None:
    registry.publish(bundle_factory("1.0.0"))
    registry.publish(bundle_factory("1.1.0"))
    registry.publish(bundle_factory("1.2.0"))
    registry.promote("1.0.0")
    swaps0 = _value("plateveil_model_swaps_total", slot="production")
    refused0 = _value("plateveil_model_swap_failures_total", reason="refused")
    swapper = ModelSwapper(registry, ModelCache(tmp_path / "cache"), poll_seconds=60, bootstrap=False, threads=1)
    swapper.start(background=False)
    try:
        name = swapper.current().name  # type: ignore[union-attr]
        assert _value("plateveil_model_info", slot="production", model=name, version="1.0.0") == 1
        registry.promote("1.1.0")
        assert swapper.refresh()
        assert _value("plateveil_model_swaps_total", slot="production") == swaps0 + 2  # start + swap
        assert _value("plateveil_model_info", slot="production", model=name, version="1.1.0") == 1
        assert _value("plateveil_model_info", slot="production", model=name, version="1.0.0") == 0

        s3.put_object(Bucket=bucket, Key=f"models/{name}/1.2.0/landmarks.onnx", Body=b"flipped bits")
        registry.promote("1.2.0")
        assert not swapper.refresh()
        assert _value("plateveil_model_swap_failures_total", reason="refused") == refused0 + 1
        assert _value("plateveil_model_info", slot="production", model=name, version="1.1.0") == 1
    finally:
        swapper.stop()
