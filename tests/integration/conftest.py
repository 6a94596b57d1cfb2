"""Fixtures shared by the integration tests that run the worker's task in this process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def tasks(stack: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """workers.tasks with a fresh per-test context built from the stack's environment."""
    from workers import tasks as module
    from workers.settings import WorkerSettings

    ctx = module.WorkerContext.from_settings(WorkerSettings())
    monkeypatch.setattr(module, "_context", ctx)
    monkeypatch.setattr(module, "_context_pid", os.getpid())
    yield module
    ctx.models.stop()  # it follows the stack's model registry: stop its swapper threads
