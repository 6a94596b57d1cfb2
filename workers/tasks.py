"""The concealment task (registered as :data:`plateveil.schema.TASK_CONCEAL`).

:func:`run_job` is the whole job as a plain function over a :class:`WorkerContext` (store, job
store, model provider, settings): read the original -> ``conceal_bytes`` -> write the concealed
photo and its JSON sidecar -> status ``done`` + completion event. The Celery task around it only
decides what a failure means:

* PermanentError (bad image, unknown style, missing source, too many deliveries) -> ``failed``
  with the reason; never retried.
* RetryableError / connection errors -> Celery retry with exponential backoff, bounded by
  ``max_retries``; the job shows ``queued`` with the last error meanwhile, then ``failed``.
* soft time limit -> ``failed`` ("timed out"); anything unexpected -> ``failed`` ("internal
  error"), logged with its traceback; the worker keeps serving.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_init, worker_process_init, worker_process_shutdown
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
        "accepted_at": job.accepted_at,
        "completed_at": completed_at,
        "metadata": job.metadata,
    }


def run_job(job: ConcealJob, ctx: WorkerContext, retries: int = 0) -> JobRecord | None:
    """Process one job; raises PermanentError / RetryableError for the task to judge."""
    from plateveil.pipeline import conceal_bytes  # heavy (cv2): only where jobs run

    attempts = ctx.jobs.mark_running(job.job_id)
    if attempts - retries > ctx.settings.max_deliveries:
        raise PermanentError(f"started {attempts - retries} times without finishing "
                             "(the photo may crash or stall the worker)")
    t0 = time.perf_counter()
    # the upload service's hand-off when there is one (no S3 round trip), else the durable original in S3
    source = (ctx.jobs.take_upload(job.job_id, job.source_bucket, job.source_key)
              or ctx.store.get(job.source_bucket, job.source_key))
    t_get = (time.perf_counter() - t0) * 1000
    model = ctx.models.pick(job.job_id)
    result = conceal_bytes(source.data, model, style=job.style or ctx.settings.default_style,
                           jpeg_quality=ctx.settings.jpeg_quality,
                           decode_budget_bytes=ctx.settings.decode_budget_mb * 2**20,
                           fast_paths=ctx.settings.fast_paths, reduced_decode=ctx.settings.reduced_decode)
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
    timings = sidecar["timings_ms"] | {"s3_put": round((time.perf_counter() - t1) * 1000, 2)}
    record = ctx.jobs.finish(job.job_id, JobStatus.DONE, model=result.model,
                             plates=sidecar["plates"], timings_ms=timings, completed_at=completed_at)
    t = timings
    worker_metrics.job_done(record, result.model, len(result.plates), t)
    logger.info("job %s done model=%s plates=%d style=%s size=%dx%d decode=%.1f detect=%.1f landmarks=%.1f "
                "conceal=%.1f encode=%.1f total=%.1f s3_get=%.1f s3_put=%.1f ms", job.job_id, result.model,
                len(result.plates), job.style, result.width, result.height, t.get("decode", 0), t.get("detect", 0),
                t.get("landmarks", 0), t.get("conceal", 0), t.get("encode", 0), t.get("total", 0),
                t.get("s3_get", 0), t.get("s3_put", 0),
                extra={"model": result.model, "plate_count": len(result.plates), "timings_ms": t})
    return record


def _fail(ctx: WorkerContext, job: ConcealJob, reason: str) -> None:
    try:
        ctx.jobs.finish(job.job_id, JobStatus.FAILED, error=reason)
    except BrokerError:
        logger.exception("job %s failed (%s) and its status could not be recorded", job.job_id, reason)


def retry_delay(retries: int, ctx: WorkerContext) -> float:
    return float(min(ctx.settings.retry_backoff_s * 2 ** retries, ctx.settings.retry_backoff_max_s))


@app.task(name=TASK_CONCEAL, bind=True)
def conceal_photo(self: Task, payload: dict[str, Any]) -> dict[str, Any]:
    job = ConcealJob.from_dict(payload)
    ctx = get_context()
    retries = int(self.request.retries or 0)
    try:
        record = run_job(job, ctx, retries)
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
        if retries >= ctx.settings.max_retries:
            logger.error("job %s failed after %d retries: %s", job.job_id, retries, exc)
            _fail(ctx, job, f"gave up after {retries + 1} attempts: {exc}")
            worker_metrics.job_failed("retries_exhausted")
        else:
            delay = retry_delay(retries, ctx)
            logger.warning("job %s: retry %d/%d in %.1f s after: %s", job.job_id, retries + 1,
                           ctx.settings.max_retries, delay, exc)
            try:
                ctx.jobs.mark_retrying(job.job_id, f"retrying after: {exc}")
            except BrokerError:
                logger.warning("job %s: could not record the retry", job.job_id)
            worker_metrics.job_retried(exc)
            raise self.retry(exc=exc, countdown=delay, max_retries=ctx.settings.max_retries) from exc
    except Exception as exc:  # a bug or an unforeseen library error: fail the job, keep the worker
        logger.exception("job %s failed with an unexpected error", job.job_id)
        _fail(ctx, job, f"internal error: {type(exc).__name__}: {exc}")
        worker_metrics.job_failed("internal_error")
    return {"job_id": job.job_id, "status": JobStatus.FAILED.value}
