"""The concealment task (registered as :data:`plateveil.schema.TASK_CONCEAL`).

:func:`run_job` is the whole job as a plain function over a :class:`WorkerContext` (store, job
store, model provider, settings): read the original -> ``conceal_bytes`` -> write the concealed
photo and its JSON sidecar -> status ``done`` + completion event. The Celery task around it only
decides what a failure means:

* PermanentError (bad image, unknown style, missing source, a photo that crashed the worker
  ``max_deliveries`` times) -> ``failed`` with the reason and a dead-letter entry; never retried.
* RetryableError / connection errors -> Celery retry after an exponential delay with jitter
  (``retry_backoff_s`` doubling up to ``retry_backoff_max_s``), for at most ``retry_window_s``
  from the first such error and ``max_retries`` retries; the job shows ``queued`` with the last
  error meanwhile, then ``failed``.
* soft time limit -> ``failed`` ("timed out"); anything unexpected -> ``failed`` ("internal
  error"), logged with its traceback; the worker keeps serving.

Redeliveries are expected (a dead worker's job comes back after the visibility timeout, the
reconciler requeues lost ones): a job already ``done``/``failed`` is skipped without being redone,
the output keys come from the payload (one object per job, rewritten whole), and only the first
end of a job is recorded and announced (:meth:`plateveil.jobs.JobStore.end` says whether this run's end
was the first). The run that ends a job hands the record it ended to the webhook queue
(:func:`workers.webhooks.queue_webhook`) itself: no flag passed between runs, no record read back.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import (
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from plateveil.errors import BrokerError, PermanentError, RetryableError
from plateveil.jobs import JobStore
from plateveil.schema import TASK_CONCEAL, ConcealJob, JobRecord, JobStatus, iso_ms, utc_now
from plateveil.storage import ObjectInfo, ObjectStore, get_store
from workers import metrics as worker_metrics
from workers.celery_app import app, settings
from workers.models import ModelProvider
from workers.settings import WorkerSettings
from workers.webhooks import queue_webhook

logger = logging.getLogger(__name__)

RETRYABLE = (RetryableError, BotoCoreError, RedisConnectionError, RedisTimeoutError, ConnectionError)


@dataclass
class WorkerContext:
    settings: WorkerSettings
    store: ObjectStore
    jobs: JobStore
    models: ModelProvider
    # one thread that writes the concealed photo while the job's own thread writes the sidecar
    writer: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="s3-put"))

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> WorkerContext:
        jobs = JobStore.from_url(settings.redis_url, ttl_s=settings.job_ttl_s, event_stream=settings.event_stream,
                                 event_maxlen=settings.event_stream_maxlen)
        return cls(settings, get_store(settings), jobs, ModelProvider(settings))


_context: WorkerContext | None = None
_context_pid: int | None = None
_context_lock = threading.Lock()


def get_context() -> WorkerContext:
    """This process's context (network clients are never shared across a fork)."""
    global _context, _context_pid
    with _context_lock:
        if _context is None or _context_pid != os.getpid():
            _context, _context_pid = WorkerContext.from_settings(settings), os.getpid()
        return _context


@worker_process_init.connect
def _load_models_in_child(**_: Any) -> None:
    """Prefork pool: every child process loads the model once, before its first job."""
    get_context().models.start()


@worker_init.connect
def _load_models_in_main(sender: Any = None, **_: Any) -> None:
    """solo/threads pools run jobs in the main process: load there (prefork loads in children)."""
    pool = str(getattr(sender, "pool_cls", "")).lower()
    if "solo" in pool or "thread" in pool:
        get_context().models.start()


@worker_process_shutdown.connect
def _unload_models(**_: Any) -> None:
    if _context is not None:
        _context.models.stop()


def build_sidecar(job: ConcealJob, source: ObjectInfo, result: Any, completed_at: str) -> dict[str, Any]:
    """The JSON written next to the concealed photo: what was found, by which model, from what."""
    summary = result.to_dict()
    return {
        "job_id": job.job_id,
        "model": result.model,
        "style": job.style,
        "plate_count": len(result.plates),
        "plates": [p.to_dict() for p in result.plates],
        "image": {"width": result.width, "height": result.height, "format": result.format,
                  "content_type": result.content_type},
        "source": {"bucket": job.source_bucket, "key": job.source_key, "etag": source.etag,
                   "content_type": source.content_type, "size": source.size},
        "output": {"bucket": job.output_bucket, "key": job.output_key},
        "timings_ms": summary.get("timings_ms", {}),
        "encoding": summary.get("encoding", {}),
        "accepted_at": job.accepted_at,
        "completed_at": completed_at,
        "metadata": job.metadata,
    }


def _ended(ctx: WorkerContext, record: JobRecord | None) -> None:
    """This run ended the job (the first end of it): queue its webhook with the record as ended. A
    webhook must never fail a job that already finished."""
    if record is None:
        return
    try:
        queue_webhook(record, ctx.settings)
    except Exception:  # the broker, a bad target: logged; the job stays ended
        logger.exception("could not queue the webhook of job %s", record.job_id)


def run_job(job: ConcealJob, ctx: WorkerContext) -> JobRecord | None:
    """Process one job; raises PermanentError / RetryableError for the task to judge."""
    from plateveil.pipeline import conceal_bytes  # heavy (cv2): only where jobs run

    started = ctx.jobs.mark_running(job)
    if started.already_finished:  # a duplicate delivery: nothing is done or announced again
        record = ctx.jobs.get(job.job_id)
        logger.info("job %s already %s: duplicate delivery skipped", job.job_id,
                    record.status.value if record else "finished")
        return record
    crashed = started.unfinished - 1
    if crashed >= ctx.settings.max_deliveries:
        raise PermanentError(f"worker crashed {crashed} times on this job (started {started.unfinished} times "
                             "without finishing; the photo may crash or stall the worker)")
    t0, cpu0 = time.perf_counter(), time.process_time()
    # the upload service's hand-off when there is one (no S3 round trip), else the durable original in S3
    source = (ctx.jobs.take_upload(job.job_id, job.source_bucket, job.source_key)
              or ctx.store.get(job.source_bucket, job.source_key))
    t_get = (time.perf_counter() - t0) * 1000
    model = ctx.models.pick(job.job_id)
    result = conceal_bytes(source.data, model, style=job.style or ctx.settings.default_style,
                           jpeg_quality=ctx.settings.jpeg_quality,
                           decode_budget_bytes=ctx.settings.decode_budget_mb * 2**20,
                           fast_paths=ctx.settings.fast_paths, reduced_decode=ctx.settings.reduced_decode,
                           plate_blocks=ctx.settings.plate_blocks)
    completed_at = iso_ms(utc_now())
    meta = {"model-version": result.model, "plate-count": str(len(result.plates)), "job-id": job.job_id}
    sidecar = build_sidecar(job, source.info, result, completed_at)
    sidecar["timings_ms"]["s3_get"] = round(t_get, 2)
    t1 = time.perf_counter()
    photo_put = ctx.writer.submit(ctx.store.put, job.output_bucket, job.output_key, result.image_bytes,
                                  result.content_type, meta)
    try:  # the two writes overlap; both must succeed before the job is done
        ctx.store.put(job.output_bucket, job.sidecar_key, json.dumps(sidecar, indent=1).encode(),
                      "application/json", meta)
    finally:
        photo_put.result()
    # the record's timings add the output writes (the sidecar is written by them, so it cannot hold them)
    # cpu: this process's CPU time over the job so far (all its threads: the photo's writer too), ms
    timings = sidecar["timings_ms"] | {"s3_put": round((time.perf_counter() - t1) * 1000, 2),
                                       "cpu": round((time.process_time() - cpu0) * 1000, 2)}
    record, claimed = ctx.jobs.end(job.job_id, JobStatus.DONE, model=result.model, plates=sidecar["plates"],
                                   timings_ms=timings, completed_at=completed_at, job=job)
    t = timings
    if claimed:  # else a concurrent run ended it first: same outputs, nothing announced
        worker_metrics.job_done(record, result.model, len(result.plates), t)
        _ended(ctx, record)
    logger.info("job %s done model=%s plates=%d style=%s size=%dx%d decode=%.1f detect=%.1f landmarks=%.1f "
                "conceal=%.1f encode=%.1f total=%.1f s3_get=%.1f s3_put=%.1f cpu=%.1f ms", job.job_id, result.model,
                len(result.plates), job.style, result.width, result.height, t.get("decode", 0), t.get("detect", 0),
                t.get("landmarks", 0), t.get("conceal", 0), t.get("encode", 0), t.get("total", 0),
                t.get("s3_get", 0), t.get("s3_put", 0), t.get("cpu", 0),
                extra={"model": result.model, "plate_count": len(result.plates), "timings_ms": t})
    return record


def _fail(ctx: WorkerContext, job: ConcealJob, reason: str) -> None:
    try:
        record, claimed = ctx.jobs.end(job.job_id, JobStatus.FAILED, error=reason, job=job)
    except BrokerError:
        logger.exception("job %s failed (%s) and its status could not be recorded", job.job_id, reason)
        return
    if claimed:
        _ended(ctx, record)


def retry_delay(retries: int, ctx: WorkerContext, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: the n-th retry waits between half and all of
    ``min(retry_backoff_s * 2**n, retry_backoff_max_s)``, so jobs that failed together (an S3 or
    Redis outage) do not all come back in the same second."""
    ceiling = min(ctx.settings.retry_backoff_s * 2 ** retries, ctx.settings.retry_backoff_max_s)
    return float(ceiling * (0.5 + 0.5 * (rng or random).random()))


@app.task(name=TASK_CONCEAL, bind=True)
def conceal_photo(self: Task, payload: dict[str, Any]) -> dict[str, Any]:
    job = ConcealJob.from_dict(payload)
    ctx = get_context()
    retries = int(self.request.retries or 0)
    try:
        record = run_job(job, ctx)
        return {"job_id": job.job_id, "status": record.status.value if record else JobStatus.DONE.value}
    except PermanentError as exc:
        logger.warning("job %s failed: %s", job.job_id, exc)
        worker_metrics.job_failed(exc)
        _fail(ctx, job, str(exc))
    except SoftTimeLimitExceeded:
        logger.warning("job %s timed out after %.0f s", job.job_id, ctx.settings.soft_time_limit_s)
        _fail(ctx, job, f"timed out after {ctx.settings.soft_time_limit_s:.0f} s")
        worker_metrics.job_failed("timeout")
    except RETRYABLE as exc:
        try:
            since = ctx.jobs.mark_retrying(job.job_id, f"retrying after: {exc}")
        except BrokerError:
            logger.warning("job %s: could not record the retry", job.job_id)
            since = time.time()
        waited = time.time() - since
        if retries >= ctx.settings.max_retries or waited >= ctx.settings.retry_window_s:
            logger.error("job %s failed after %d retries over %.0f s: %s", job.job_id, retries, waited, exc)
            _fail(ctx, job, f"gave up after {retries + 1} attempts over {waited:.0f} s: {exc}")
            worker_metrics.job_failed("retries_exhausted")
        else:
            delay = retry_delay(retries, ctx)
            logger.warning("job %s: retry %d/%d in %.1f s (retrying for %.0f of %.0f s) after: %s", job.job_id,
                           retries + 1, ctx.settings.max_retries, delay, waited, ctx.settings.retry_window_s, exc)
            # If Redis is down this publish fails too: the task then errors out and its ack fails
            # with it, so the message stays unacknowledged and comes back after the visibility
            # timeout; the reconciler requeues it if Redis lost it.
            worker_metrics.job_retried(exc)
            raise self.retry(exc=exc, countdown=delay, max_retries=ctx.settings.max_retries) from exc
    except Exception as exc:  # a bug or an unforeseen library error: fail the job, keep the worker
        logger.exception("job %s failed with an unexpected error", job.job_id)
        _fail(ctx, job, f"internal error: {type(exc).__name__}: {exc}")
        worker_metrics.job_failed("internal_error")
    return {"job_id": job.job_id, "status": JobStatus.FAILED.value}


_reconciler_loop: Any = None


@worker_ready.connect
def _start_reconciler(**_: Any) -> None:
    """The worker's main process runs the reconciler every ``reconcile_interval_s`` (one worker
    of the fleet at a time, by a Redis lock): accepted jobs the queue lost are requeued."""
    global _reconciler_loop
    if settings.reconcile_interval_s <= 0:
        return
    from workers.reconcile import ReconcileLoop

    _reconciler_loop = ReconcileLoop.from_settings(settings)
    _reconciler_loop.start()


@worker_shutdown.connect
def _stop_reconciler(**_: Any) -> None:
    if _reconciler_loop is not None:
        _reconciler_loop.stop()
