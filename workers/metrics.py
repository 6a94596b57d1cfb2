"""Prometheus metrics of a worker, served by one HTTP exporter per worker (``PLATEVEIL_METRICS_PORT``).

Metrics (all prefixed ``plateveil_``):

* ``jobs_total{outcome,reason}``: finished jobs; ``outcome`` done | failed, ``reason`` empty for done,
  else bad_image, unknown_style, source_missing, too_many_deliveries, permanent, timeout,
  retries_exhausted, internal_error;
* ``job_retries_total{reason}``: retries scheduled after a retryable error (storage, broker, connection);
* ``dead_letters_total{reason}``: jobs given up for reasons a replay can cure (retries_exhausted,
  too_many_deliveries, timeout, internal_error);
* ``job_latency_seconds``: end to end, accepted by the API -> done; ``job_processing_seconds``:
  started by this worker -> done (S3 read and writes included);
* ``stage_duration_seconds{stage}``: the pipeline's own timings (decode, detect, landmarks,
  conceal, encode, total);
* ``plates_per_photo{model}``: plates found per done photo, by model ``name@version``;
* ``model_info{slot,model,version}``: 1 for each model a live worker process serves (slot
  production | canary);
* ``model_swaps_total{slot}``, ``model_swap_failures_total{reason}``: hot swaps (the first load from
  the registry counts as one) and refused /
  unreadable / undownloadable registry versions;
* ``webhook_deliveries_total{outcome}``: webhook attempts (delivered, retried, failed for good).

Celery's prefork pool runs jobs in child processes, so the metrics use prometheus_client's
*multiprocess mode*: every process writes its values to mmap'ed files in
``PROMETHEUS_MULTIPROC_DIR`` and the exporter, in the worker's main process, adds them up at each
scrape. The folder is emptied when the worker starts (``celeryd_init``; a stale file from an
earlier run would otherwise be added in), created in the temp folder when the variable is unset,
and a child's live gauges are dropped when it exits (``mark_process_dead``). Counters and
histograms of exited children stay in the sums, as they must. A child killed outright (hard time
limit, OOM) cannot clean up: its ``model_info`` row lingers until the worker restarts. The solo and
threads pools take the same path (one process).

prometheus_client picks multiprocess mode when it is first imported, so this module imports it
only inside functions, after :func:`prepare_multiproc_dir` has set the variable.
"""

from __future__ import annotations

import glob
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plateveil.errors import (
    BadImageError,
    BrokerError,
    PermanentError,
    SourceMissingError,
    StorageError,
    UnknownStyleError,
)
from plateveil.schema import parse_iso

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    from workers.settings import WorkerSettings

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

JOBS = "plateveil_jobs_total"
RETRIES = "plateveil_job_retries_total"
DEAD_LETTERS = "plateveil_dead_letters_total"
JOB_LATENCY = "plateveil_job_latency_seconds"
JOB_PROCESSING = "plateveil_job_processing_seconds"
STAGE_DURATION = "plateveil_stage_duration_seconds"
PLATES_PER_PHOTO = "plateveil_plates_per_photo"
MODEL_INFO = "plateveil_model_info"
MODEL_SWAPS = "plateveil_model_swaps_total"
MODEL_SWAP_FAILURES = "plateveil_model_swap_failures_total"
WEBHOOKS = "plateveil_webhook_deliveries_total"

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60, 120, 300)
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
PLATE_BUCKETS = (0, 1, 2, 3, 4, 6, 8, 12, 20)
REPLAYABLE = ("retries_exhausted", "too_many_deliveries", "timeout", "internal_error")


@dataclass(frozen=True)
class WorkerMetrics:
    registry: CollectorRegistry  # this process's (in multiprocess mode the values live in the files)
    jobs: Counter
    retries: Counter
    dead_letters: Counter
    latency: Histogram
    processing: Histogram
    stages: Histogram
    plates: Histogram
    model_info: Gauge
    swaps: Counter
    swap_failures: Counter
    webhooks: Counter


_metrics: WorkerMetrics | None = None
_lock = threading.Lock()
_served: dict[str, tuple[str, str]] = {}  # slot -> (model, version) last set to 1 in this process


def metrics() -> WorkerMetrics:
    """This process's metric objects, made on first use (after the exporter prepared the folder)."""
    global _metrics
    with _lock:
        if _metrics is None:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

            registry = CollectorRegistry(auto_describe=True)  # values live in the multiprocess files
            _metrics = WorkerMetrics(
                registry=registry,
                jobs=Counter(JOBS.removesuffix("_total"), "finished jobs by outcome and failure reason",
                             ["outcome", "reason"], registry=registry),
                retries=Counter(RETRIES.removesuffix("_total"), "retries after retryable errors", ["reason"],
                                registry=registry),
                dead_letters=Counter(DEAD_LETTERS.removesuffix("_total"),
                                     "jobs given up for reasons a replay can cure", ["reason"], registry=registry),
                latency=Histogram(JOB_LATENCY, "accepted by the API -> done, seconds", registry=registry,
                                  buckets=LATENCY_BUCKETS),
                processing=Histogram(JOB_PROCESSING, "started by the worker -> done, seconds", registry=registry,
                                     buckets=LATENCY_BUCKETS),
                stages=Histogram(STAGE_DURATION, "pipeline stage durations, seconds", ["stage"], registry=registry,
                                 buckets=STAGE_BUCKETS),
                plates=Histogram(PLATES_PER_PHOTO, "plates found per photo", ["model"], registry=registry,
                                 buckets=PLATE_BUCKETS),
                model_info=Gauge(MODEL_INFO, "1 for each model a live worker process serves",
                                 ["slot", "model", "version"], registry=registry, multiprocess_mode="livemax"),
                swaps=Counter(MODEL_SWAPS.removesuffix("_total"), "model hot swaps", ["slot"], registry=registry),
                swap_failures=Counter(MODEL_SWAP_FAILURES.removesuffix("_total"),
                                      "registry versions that could not be swapped in", ["reason"],
                                      registry=registry),
                webhooks=Counter(WEBHOOKS.removesuffix("_total"), "webhook attempts by outcome", ["outcome"],
                                 registry=registry),
            )
        return _metrics


# -- recording (each call is safe to make anywhere: it never raises) --------------------------------

def failure_reason(exc: BaseException | str) -> str:
    """The ``reason`` label of a failed job."""
    if isinstance(exc, str):
        return exc
    if isinstance(exc, BadImageError):
        return "bad_image"
    if isinstance(exc, UnknownStyleError):
        return "unknown_style"
    if isinstance(exc, SourceMissingError):
        return "source_missing"
    if isinstance(exc, PermanentError) and str(exc).startswith("started "):
        return "too_many_deliveries"
    if isinstance(exc, PermanentError):
        return "permanent"
    return "internal_error"


def retry_reason(exc: BaseException) -> str:
    if isinstance(exc, StorageError) or type(exc).__module__.startswith("botocore"):
        return "storage"
    if isinstance(exc, BrokerError) or type(exc).__module__.startswith("redis"):
        return "broker"
    return "connection"


def _safely(fn: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except Exception:  # metrics must never fail a job
            logger.warning("could not record metric %s", fn.__name__, exc_info=True)
    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


@_safely
def job_done(record: Any, model: str, plate_count: int, timings_ms: dict[str, float]) -> None:
    """A done job: its :class:`~plateveil.schema.JobRecord` (for the times), model, plates, stage timings."""
    m = metrics()
    m.jobs.labels("done", "").inc()
    m.plates.labels(model).observe(plate_count)
    for stage, ms in timings_ms.items():
        m.stages.labels(stage).observe(float(ms) / 1000.0)
    if record is not None and record.completed_at:
        done = parse_iso(record.completed_at)
        m.latency.observe(max(0.0, (done - parse_iso(record.accepted_at)).total_seconds()))
        if record.started_at:
            m.processing.observe(max(0.0, (done - parse_iso(record.started_at)).total_seconds()))


@_safely
def job_failed(reason: BaseException | str) -> None:
    label = failure_reason(reason)
    m = metrics()
    m.jobs.labels("failed", label).inc()
    if label in REPLAYABLE:
        m.dead_letters.labels(label).inc()


@_safely
def job_retried(exc: BaseException) -> None:
    metrics().retries.labels(retry_reason(exc)).inc()


@_safely
def webhook_sent(outcome: str) -> None:
    """One webhook attempt's outcome: delivered, retried or failed (for good)."""
    metrics().webhooks.labels(outcome).inc()


@_safely
def model_served(slot: str, tag: str | None) -> None:
    """``tag`` (``name@version``, None when the slot is empty) now serves ``slot`` in this process."""
    m = metrics()
    previous = _served.pop(slot, None)
    if previous is not None:
        m.model_info.labels(slot, *previous).set(0)
    if tag:
        name, _, version = tag.partition("@")
        _served[slot] = (name, version)
        m.model_info.labels(slot, name, version).set(1)


@_safely
def model_state(state: dict[str, Any]) -> None:
    """Mirror a :meth:`workers.hotswap.ModelSwapper.state` into ``model_info``."""
    name = str(state.get("production_tag") or "").partition("@")[0]
    model_served("production", state.get("production_tag"))
    canary = state.get("canary")
    model_served("canary", f"{name}@{canary}" if canary and name else None)


@_safely
def model_swapped(slot: str) -> None:
    metrics().swaps.labels(slot).inc()


@_safely
def model_swap_failed(message: str) -> None:
    """A registry version not swapped in; the reason from :meth:`ModelSwapper._fail`'s message."""
    reason = ("registry_unreadable" if message.startswith("cannot read") else
              "download" if message.startswith("cannot download") else
              "refused" if message.startswith("refused") else "other")
    metrics().swap_failures.labels(reason).inc()


# -- the exporter ------------------------------------------------------------------------------------

def prepare_multiproc_dir() -> str:
    """Make ``PROMETHEUS_MULTIPROC_DIR`` an empty folder (a fresh temp one when unset) and return it.
    Call in the worker's main process before any metric exists and before the pool forks."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        path = tempfile.mkdtemp(prefix="plateveil-metrics-")
        os.environ[MULTIPROC_ENV] = path  # inherited by the pool's children
    os.makedirs(path, exist_ok=True)
    for stale in glob.glob(os.path.join(path, "*.db")):
        os.remove(stale)
    return path


def start_exporter(port: int, addr: str = "0.0.0.0") -> Any:
    """Serve the aggregated metrics of every process of this worker on ``addr:port`` (a daemon thread)."""
    import prometheus_client.values
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    if not os.environ.get(MULTIPROC_ENV) or prometheus_client.values.ValueClass.__name__ == "MutexValue":
        raise RuntimeError(f"{MULTIPROC_ENV} must be set before prometheus_client is imported "
                           "(call prepare_multiproc_dir first)")
    registry = CollectorRegistry(auto_describe=False)
    multiprocess.MultiProcessCollector(registry)
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return server


def process_exited(pid: int | None = None) -> None:
    """Drop the live gauges of an exiting process (``mark_process_dead``)."""
    if not os.environ.get(MULTIPROC_ENV):
        return
    try:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())
    except OSError:
        logger.warning("could not clean the metrics files of process %s", pid, exc_info=True)


def install(settings: WorkerSettings) -> None:
    """Connect the Celery signals: prepare the folder and start the exporter when a worker starts
    (not for ``celery inspect`` and other commands that only import the app), clean up per child."""
    from celery.signals import celeryd_init, worker_process_shutdown, worker_shutdown

    if not settings.metrics_port:
        return

    def _on_worker_start(**_: Any) -> None:
        path = prepare_multiproc_dir()
        start_exporter(settings.metrics_port, settings.metrics_addr)
        logger.info("worker metrics on http://%s:%d/metrics (multiprocess folder %s)", settings.metrics_addr,
                    settings.metrics_port, path)

    def _on_child_exit(**_: Any) -> None:
        process_exited()

    celeryd_init.connect(_on_worker_start, weak=False)
    worker_process_shutdown.connect(_on_child_exit, weak=False)
    worker_shutdown.connect(_on_child_exit, weak=False)
