"""Hot-swapping registry models into a running worker without losing a job.

A :class:`ModelSwapper` holds the model each alias (``production``, optionally ``canary``) points
at. One background thread notices alias changes, by polling every ``poll_seconds`` and at once when
a nudge arrives on the Redis channel ``plateveil:models`` (published by ``promote``/``rollback``).
For a new version it downloads through the verified cache, loads it, runs the golden smoke check and
only then swaps the reference: one attribute assignment under a lock, between jobs. A job keeps the
model object :meth:`ModelSwapper.pick` gave it for its whole run, so a swap never changes a model
under a running job. On any failure the old model keeps serving, the reason is logged and shown by
:meth:`ModelSwapper.state` (also written to the Redis hash ``plateveil:worker:<hostname>:<pid>``,
field ``models``, on every poll; it expires when the worker stops polling). Once the worker serves
what the aliases say, the last error is cleared.

Every version served after its checks is remembered twice: in the local cache
(:meth:`~model_store.cache.ModelCache.save_last_good`), so a worker that restarts while the alias
points at a version it refuses starts from its last good version rather than the shipped bundle; and
in the registry (:meth:`~model_store.registry.Registry.record_served`), which ``plateveil models
rollback`` goes back to.

Canary: with ``canary_share`` > 0 and a ``canary`` alias set, that share of jobs (chosen by a hash
of the job id, so a retried job stays on one model) gets the canary model.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from model_store.bundle import default_model_dir
from model_store.cache import ModelCache
from model_store.errors import ModelLoadError, RegistryError
from model_store.golden import DEFAULT_MAX_MS, smoke_check
from model_store.registry import NUDGE_CHANNEL, WORKER_STATUS_PREFIX, Registry, ensure_bootstrap
from model_store.registry_settings import DEFAULT_MIN_FOUND
from model_store.runtime import PlateModel, load_model
from plateveil.errors import StorageError
from workers import metrics as worker_metrics

logger = logging.getLogger(__name__)

STATUS_KEY_PREFIX = WORKER_STATUS_PREFIX
SLOTS = ("production", "canary")

Loader = Callable[..., PlateModel]
Checker = Callable[..., Any]


def job_bucket(job_id: str) -> float:
    """A stable number in [0, 1) for a job id: the same job always lands on the same model."""
    return int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:8], "big") / 2**64


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class ModelSwapper:
    """Serves the models the registry's aliases point at; see the module docstring."""

    def __init__(self, registry: Registry, cache: ModelCache, *, alias: str = "production",
                 canary_alias: str = "canary", canary_share: float = 0.0, poll_seconds: float = 10.0,
                 backend: str = "onnx", threads: int = 0, smoke_max_ms: float = DEFAULT_MAX_MS,
                 smoke_min_found: int = DEFAULT_MIN_FOUND,
                 redis_client: Any = None, hostname: str | None = None, bootstrap: bool = True,
                 fallback_dir: Path | None = None, loader: Loader = load_model, check: Checker = smoke_check,
                 cache_idle_s: float = 3600.0) -> None:
        if not 0.0 <= canary_share <= 1.0:
            raise ValueError(f"canary_share must be within 0..1, got {canary_share}")
        if poll_seconds <= 0:
            raise ValueError(f"poll_seconds must be > 0, got {poll_seconds}")
        self.registry = registry
        self.cache = cache
        self.aliases = {"production": alias, "canary": canary_alias}
        self.canary_share = canary_share
        self.poll_seconds = poll_seconds
        self.backend = backend
        self.threads = threads
        self.smoke_max_ms = smoke_max_ms
        self.smoke_min_found = smoke_min_found  # a model blind to the golden plates is broken, however it loads
        self.redis = redis_client
        self.status_key = STATUS_KEY_PREFIX + (hostname or f"{socket.gethostname()}:{os.getpid()}")
        self.bootstrap = bootstrap
        self.fallback_dir = fallback_dir
        self._loader = loader
        self._check = check
        self.cache_idle_s = cache_idle_s
        self._previous_production: str | None = None
        self._lock = threading.Lock()  # guards the model references and the state below
        self._load_lock = threading.Lock()  # one load at a time
        self._models: dict[str, PlateModel | None] = dict.fromkeys(SLOTS)
        self._source = "none"
        self._loading = False
        self._last_check: str | None = None
        self._last_error: str | None = None
        self._last_error_at: str | None = None
        self._since: dict[str, str | None] = dict.fromkeys(SLOTS)  # when each slot's model was swapped in
        self._rejected: dict[str, str] = {}
        self._targets: dict[str, str | None] = dict.fromkeys(SLOTS)  # what the aliases said last time
        self._swaps = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- serving -------------------------------------------------------------------------------

    def pick(self, job_id: str) -> PlateModel:
        """The model for this job: canary for ``canary_share`` of job ids (when a canary is loaded),
        production otherwise. Never blocks on a load."""
        with self._lock:
            production, canary = self._models["production"], self._models["canary"]
        if production is None:
            raise ModelLoadError("no model loaded yet: ModelSwapper.start() has not succeeded")
        if canary is not None and self.canary_share > 0 and job_bucket(job_id) < self.canary_share:
            return canary
        return production

    def current(self, slot: str = "production") -> PlateModel | None:
        with self._lock:
            return self._models[slot]

    def state(self) -> dict[str, Any]:
        with self._lock:
            production, canary = self._models["production"], self._models["canary"]
            return {
                "source": self._source,
                "production": production.version if production else None,
                "production_tag": production.tag if production else None,
                "canary": canary.version if canary else None,
                "canary_share": self.canary_share,
                "targets": dict(self._targets),
                "in_sync": self._in_sync(),
                "aliases": dict(self.aliases),
                "registry": repr(self.registry),
                "loading": self._loading,
                "production_since": self._since["production"],
                "canary_since": self._since["canary"],
                "last_check": self._last_check,
                "last_error": self._last_error,
                "last_error_at": self._last_error_at,
                "rejected": dict(self._rejected),
                "swaps": self._swaps,
                "poll_seconds": self.poll_seconds,
            }

    # -- life cycle ----------------------------------------------------------------------------

    def start(self, background: bool = True) -> None:
        """Load the current models (synchronously: the worker takes no job before), then watch
        for changes in the background. When the registry cannot give a production model (the
        alias points at a version this worker refuses, or S3 cannot be read), it serves the last
        version it served before (from the cache), else the shipped bundle, so a worker always starts."""
        if self.bootstrap:
            try:
                ensure_bootstrap(self.registry, alias=self.aliases["production"])
            except (RegistryError, StorageError, ModelLoadError):
                logger.exception("could not bootstrap %s with the shipped bundle", self.registry)
        self.refresh()
        if self.current() is None:
            self._start_from_last_good()
        if self.current() is None:
            fallback = self.fallback_dir or default_model_dir()
            logger.warning("no production model from %s; serving the shipped bundle %s", self.registry, fallback)
            model = self._loader(fallback, backend=self.backend, threads=self.threads)
            with self._lock:
                self._models["production"] = model
                self._source = "shipped"
                self._since["production"] = _now()
            self._publish_state()
        if background:
            self._stop.clear()
            self._threads = [threading.Thread(target=self._poll_loop, name="model-swapper", daemon=True)]
            if self.redis is not None:
                self._threads.append(threading.Thread(target=self._listen_loop, name="model-nudges", daemon=True))
            for t in self._threads:
                t.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)
        self._threads = []

    def nudge(self) -> None:
        """Check the registry now (what a Redis nudge does)."""
        self._wake.set()

    # -- loading -------------------------------------------------------------------------------

    def _start_from_last_good(self) -> None:
        """Serve the last version this cache saw served for the production alias, when it is still
        complete there and passes the checks again."""
        folder = self.cache.last_good(self.registry.name, registry_id=repr(self.registry),
                                      alias=self.aliases["production"])
        if folder is None:
            return
        try:
            model = self._loader(folder, backend=self.backend, threads=self.threads)
            report = self._check(model, max_ms=self.smoke_max_ms, min_found=self.smoke_min_found or None)
        except Exception:  # a last good copy that no longer loads: the shipped bundle it is
            logger.exception("the last good model at %s does not load any more", folder)
            return
        with self._lock:
            self._models["production"] = model
            self._source = "last-good"
            self._since["production"] = _now()
        logger.warning("alias %s of %s gives no model this worker accepts (targets %s); serving the last good "
                       "version %s from the cache %s (smoke check: %s)", self.aliases["production"], self.registry,
                       self._targets["production"], model.tag, folder, report)
        self._publish_state()

    def refresh(self) -> bool:
        """One check of the aliases; loads and swaps what changed. True when something was swapped.
        Never raises: failures are logged and kept in :meth:`state`; the last error is cleared once
        the worker serves what the aliases say."""
        swapped = False
        with self._load_lock:
            try:
                for slot in SLOTS:
                    swapped |= self._refresh_slot(slot)
            finally:
                with self._lock:
                    self._last_check = _now()
                    self._clear_error_if_in_sync()
        self._publish_state()
        return swapped

    def _clear_error_if_in_sync(self) -> None:
        """Caller holds ``self._lock``. Clears the last error in the same step that brings the worker in
        sync, so a reader never sees the new source beside the old error."""
        if self._in_sync():
            self._last_error = self._last_error_at = None

    def _in_sync(self) -> bool:
        """Caller holds ``self._lock``."""
        return self._source == "registry" and all(
            (m.version if m is not None else None) == self._targets[slot]
            for slot, m in self._models.items() if slot == "production" or self.canary_share > 0)

    def _refresh_slot(self, slot: str) -> bool:
        alias = self.aliases[slot]
        if slot == "canary" and self.canary_share <= 0:
            return False
        try:
            version = self.registry.resolve(alias)
        except (RegistryError, StorageError) as exc:
            self._fail(f"cannot read alias {alias} from {self.registry}: {exc}")
            logger.warning("cannot read alias %s from %s; keeping the current model: %s", alias, self.registry, exc)
            return False
        with self._lock:
            self._targets[slot] = version
        current = self.current(slot)
        if version is None:
            if slot == "canary" and current is not None:
                self._swap(slot, None)
                logger.info("canary alias %s removed; all jobs on production", alias)
                return True
            return False
        if current is not None and current.version == version and (slot == "canary" or self._source == "registry"):
            return False
        if current is not None and current.version == version and self._source == "last-good" \
                and self._same_as_registry(current, version):
            # the alias came back to the version this worker started from, with the same bytes
            with self._lock:
                self._source = "registry"
                self._clear_error_if_in_sync()
            self._remember_served(slot, version)
            return True
        if version in self._rejected:
            return False
        production = self.current("production")
        if slot == "canary" and production is not None and production.version == version and self._source == "registry":
            self._swap(slot, production)
            return True
        try:
            model = self._load(version)
        except StorageError as exc:
            self._fail(f"cannot download {self.registry.name}@{version}: {exc}")
            logger.warning("cannot download %s@%s for %s; keeping %s: %s", self.registry.name, version, alias,
                           current.tag if current else None, exc)
            return False
        except Exception as exc:  # integrity, load or smoke-check failure: this version is bad
            reason = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self._rejected[version] = reason
            self._fail(f"refused {self.registry.name}@{version} for {alias}: {reason}")
            logger.exception("refused %s@%s for alias %s; keeping %s", self.registry.name, version, alias,
                             current.tag if current else None)
            return False
        self._swap(slot, model)
        logger.info("now serving %s for alias %s (was %s)", model.tag, alias, current.tag if current else None)
        self._remember_served(slot, version)
        return True

    def _same_as_registry(self, model: PlateModel, version: str) -> bool:
        try:
            return self.cache.verify(Path(model.model_dir), self.registry.manifest_bytes(version))
        except (RegistryError, StorageError):
            return False

    def _remember_served(self, slot: str, version: str) -> None:
        """Best effort: the cache's last good version (production) and the registry's served record."""
        alias = self.aliases[slot]
        if slot == "production":
            try:
                self.cache.save_last_good(self.registry.name, version, registry_id=repr(self.registry), alias=alias)
            except OSError:
                logger.warning("cannot record the last good version in %s", self.cache.root, exc_info=True)
        try:
            self.registry.record_served(alias, version)
        except (RegistryError, StorageError) as exc:
            logger.warning("cannot record in %s that %s@%s is served for %s: %s", self.registry,
                           self.registry.name, version, alias, exc)

    def _load(self, version: str) -> PlateModel:
        with self._lock:
            self._loading = True
        self._publish_state()
        try:
            return self._load_checked(version)
        finally:
            with self._lock:
                self._loading = False

    def _load_checked(self, version: str) -> PlateModel:
        folder = self.cache.fetch(self.registry, version)
        model = self._loader(folder, backend=self.backend, threads=self.threads)
        if model.version != version:
            raise ModelLoadError(f"{self.registry.name}@{version} holds a model.json of version {model.version}")
        report = self._check(model, max_ms=self.smoke_max_ms, min_found=self.smoke_min_found or None)
        logger.info("smoke check of %s passed: %s", model.tag, report)
        return model

    def _swap(self, slot: str, model: PlateModel | None) -> None:
        with self._lock:
            old = self._models[slot]
            self._models[slot] = model
            self._since[slot] = _now() if model is not None else None
            if slot == "production":
                if old is not None and self._source == "registry":
                    self._previous_production = old.version
                self._source = "registry"
            self._clear_error_if_in_sync()
            self._swaps += 1
        worker_metrics.model_swapped(slot)
        self._prune_cache()

    def _prune_cache(self) -> None:
        """Keep the cached versions in use and the previous production one (a rollback is then
        instant); drop the others once idle for ``cache_idle_s``."""
        with self._lock:
            keep = {m.version for m in self._models.values() if m is not None}
            if self._previous_production:
                keep.add(self._previous_production)
        try:
            self.cache.prune(self.registry.name, keep, min_idle_s=self.cache_idle_s)
        except OSError:
            logger.warning("cannot prune the model cache %s", self.cache.root, exc_info=True)

    def _fail(self, message: str) -> None:
        worker_metrics.model_swap_failed(message)
        with self._lock:
            self._last_error = message
            self._last_error_at = _now()

    # -- background threads --------------------------------------------------------------------

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.refresh()
            except Exception:  # the loop must survive anything
                logger.exception("model refresh failed")

    def _listen_loop(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(NUDGE_CHANNEL)
                backoff = 1.0
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message and message.get("type") == "message":
                        self._on_nudge(message.get("data"))
            except Exception as exc:  # redis connection errors of every kind: polling still works
                logger.warning("model nudge listener lost Redis (%s); retrying in %.0f s", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:  # closing a dead connection
                        logger.debug("closing the pubsub connection failed", exc_info=True)

    def _on_nudge(self, data: Any) -> None:
        try:
            payload = json.loads(data.decode() if isinstance(data, bytes) else data)
        except (ValueError, AttributeError):
            payload = {}
        if payload.get("name") not in (None, self.registry.name):
            return
        version = payload.get("version")
        if version:
            with self._lock:  # an explicit promotion deserves a fresh try
                self._rejected.pop(version, None)
        logger.info("model nudge: %s", payload)
        self._wake.set()

    def _publish_state(self) -> None:
        worker_metrics.model_state(self.state())
        if self.redis is None:
            return
        try:
            pipe = self.redis.pipeline()
            pipe.hset(self.status_key, mapping={"models": json.dumps(self.state()), "models_updated_at": _now()})
            pipe.expire(self.status_key, int(max(60, 3 * self.poll_seconds)))
            pipe.execute()
        except Exception as exc:  # status is best effort
            logger.warning("cannot write the model state to %s: %s", self.status_key, exc)
