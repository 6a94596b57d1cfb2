"""Which model a job runs with. Loaded once per worker process, never per job.

``ModelProvider`` is the seam for model management: ``start()`` loads, ``pick(job_id)`` hands a
job the model it keeps from start to finish, ``state()`` describes what is loaded, ``stop()``
releases it. This first version serves the one configured bundle (the shipped one by default)
with the configured backend.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from model_store.runtime import PlateModel, load_model
from workers.settings import WorkerSettings

logger = logging.getLogger(__name__)


class ModelProvider:
    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._model: PlateModel | None = None
        self._lock = threading.Lock()
        self._loaded_at: float | None = None

    def start(self) -> None:
        """Load the model (idempotent); ModelLoadError if the bundle is missing or broken."""
        with self._lock:
            if self._model is not None:
                return
            t0 = time.perf_counter()
            self._model = load_model(self.settings.model_dir, backend=self.settings.backend,
                                     threads=self.settings.threads)
            self._loaded_at = time.time()
            logger.info("loaded model %s (%s backend, %d threads) from %s in %.0f ms", self._model.tag,
                        self._model.backend, self.settings.threads, self._model.model_dir,
                        (time.perf_counter() - t0) * 1000)

    def pick(self, job_id: str) -> PlateModel:
        """The model job ``job_id`` uses from start to finish (loads it on first use)."""
        if self._model is None:
            self.start()
        assert self._model is not None
        return self._model

    def state(self) -> dict[str, Any]:
        model = self._model
        if model is None:
            return {"loaded": False, "backend": self.settings.backend}
        return {"loaded": True, "model": model.tag, "backend": model.backend, "model_dir": str(model.model_dir),
                "loaded_at": self._loaded_at}

    def stop(self) -> None:
        with self._lock:
            self._model = None
            self._loaded_at = None
