"""Which model a job runs with. Loaded once per worker process, never per job.

``ModelProvider`` is the seam for model management: ``start()`` loads, ``pick(job_id)`` hands a
job the model it keeps from start to finish, ``state()`` describes what is loaded, ``stop()``
releases it. Without a registry (``PLATEVEIL_REGISTRY_BUCKET`` unset) it serves the one configured
bundle (the shipped one by default) with the configured backend. With a registry it hands the work
to a :class:`workers.hotswap.ModelSwapper`: the ``model_alias`` version, hot-swapped when the alias
moves, and the canary for ``canary_share`` of the jobs.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model_store.runtime import PlateModel, load_model
from workers import metrics as worker_metrics
from workers.settings import WorkerSettings

if TYPE_CHECKING:
    from workers.hotswap import ModelSwapper

logger = logging.getLogger(__name__)


class ModelProvider:
    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._model: PlateModel | None = None
        self._lock = threading.Lock()
        self._loaded_at: float | None = None
        self._swapper: ModelSwapper | None = None

    def start(self) -> None:
        """Load the model (idempotent); ModelLoadError if the bundle is missing or broken."""
        with self._lock:
            if self._model is not None or self._swapper is not None:
                return
            if self.settings.registry_bucket:
                self._swapper = _start_swapper(self.settings)
                return
            t0 = time.perf_counter()
            self._model = load_model(self.settings.model_dir, backend=self.settings.backend,
                                     threads=self.settings.threads)
            self._loaded_at = time.time()
            worker_metrics.model_served("production", self._model.tag)
            logger.info("loaded model %s (%s backend, %d threads) from %s in %.0f ms", self._model.tag,
                        self._model.backend, self.settings.threads, self._model.model_dir,
                        (time.perf_counter() - t0) * 1000)

    def pick(self, job_id: str) -> PlateModel:
        """The model job ``job_id`` uses from start to finish (loads it on first use)."""
        if self._model is None and self._swapper is None:
            self.start()
        if self._swapper is not None:
            return self._swapper.pick(job_id)
        assert self._model is not None
        return self._model

    def state(self) -> dict[str, Any]:
        if self._swapper is not None:
            current = self._swapper.current()
            return {"loaded": current is not None, "model": current.tag if current else None,
                    "backend": self.settings.backend, **self._swapper.state()}
        model = self._model
        if model is None:
            return {"loaded": False, "backend": self.settings.backend}
        return {"loaded": True, "model": model.tag, "backend": model.backend, "model_dir": str(model.model_dir),
                "loaded_at": self._loaded_at}

    def stop(self) -> None:
        with self._lock:
            if self._swapper is not None:
                self._swapper.stop()
                self._swapper = None
            self._model = None
            self._loaded_at = None


def _start_swapper(settings: WorkerSettings) -> ModelSwapper:
    """A started ModelSwapper over the configured registry (imports boto3 and redis only here). Workers
    never publish alias changes, so their registry nudges nobody."""
    from model_store.cache import ModelCache
    from model_store.registry import registry_from_settings
    from plateveil.redisconn import redis_from_url
    from workers.hotswap import ModelSwapper

    registry = registry_from_settings(settings, notify=False)
    swapper = ModelSwapper(
        registry, ModelCache(settings.model_cache_dir), alias=settings.model_alias,
        canary_alias=settings.canary_alias, canary_share=settings.canary_share,
        poll_seconds=settings.model_poll_seconds, backend=settings.backend, threads=settings.threads,
        smoke_max_ms=settings.smoke_max_ms, smoke_min_found=settings.smoke_min_found,
        fallback_dir=Path(settings.model_dir) if settings.model_dir else None,
        redis_client=redis_from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=10,
                                          health_check_interval=30))
    swapper.start()
    state = swapper.state()
    where = {"registry": "from the registry", "last-good": "from the cache (its last good version; the alias "
             "gives none this worker accepts)", "shipped": "from the shipped bundle (the registry gives none)"}
    logger.info("serving %s %s %s (alias %s -> %s, canary share %.2f, poll %.0f s)", state["production_tag"],
                where.get(state["source"], state["source"]), registry, settings.model_alias,
                state["targets"]["production"], settings.canary_share, settings.model_poll_seconds)
    return swapper
