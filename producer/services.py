"""What the upload service talks to - the job store, the object store, the broker - and the one
place that turns a photo already in storage into a queued job (:meth:`Services.accept`).

The broker is reached through a bare Celery app that only *sends* tasks by name; this package
never imports ``workers`` (nor mxnet).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from celery import Celery

from plateveil.errors import BrokerError
from plateveil.jobs import JobStore
from plateveil.redisconn import celery_broker, redis_from_url
from plateveil.schema import (
    TASK_CONCEAL,
    ConcealJob,
    JobRecord,
    JobStatus,
    dated_key,
    extension_for,
    iso_ms,
    new_job_id,
    utc_now,
)
from plateveil.storage import ObjectStore, StoredObject, get_store
from plateveil.storage.breaker import BreakerStore
from producer.identity import current_key_id
from producer.limits import Limits
from producer.settings import ProducerSettings
from producer.validation import scrub

logger = logging.getLogger(__name__)


def make_sender(settings: ProducerSettings) -> Celery:
    """A Celery app used only to publish: JSON, short bounded publish retries, no result backend."""
    broker = celery_broker(settings.redis_url, {"socket_connect_timeout": settings.enqueue_timeout_s,
                                                "socket_timeout": settings.enqueue_timeout_s})
    app = Celery("plateveil-producer", broker=broker.url, set_as_current=False)
    app.conf.update(
        broker_use_ssl=broker.use_ssl,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=settings.queue,
        broker_connection_timeout=settings.enqueue_timeout_s,
        broker_transport_options=broker.transport_options,  # + master_name with Redis Sentinel
        task_publish_retry=True,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5,
                                   "interval_max": 1.0},
    )
    return app


@dataclass
class Services:
    settings: ProducerSettings
    store: ObjectStore
    jobs: JobStore
    sender: Celery
    health_store: ObjectStore
    limits: Limits

    @classmethod
    def from_settings(cls, settings: ProducerSettings) -> Services:
        jobs = JobStore(redis_from_url(settings.redis_url, decode_responses=True,
                                             socket_connect_timeout=settings.health_timeout_s,
                                             socket_timeout=settings.enqueue_timeout_s),
                        ttl_s=settings.job_ttl_s, event_stream=settings.event_stream,
                        event_maxlen=settings.event_stream_maxlen)
        quick = settings.model_copy(update={"s3_connect_timeout_s": settings.health_timeout_s,
                                            "s3_read_timeout_s": settings.health_timeout_s, "s3_max_attempts": 1})
        # the request path fails fast: short timeouts, one attempt, and a circuit breaker that answers at
        # once while S3 keeps failing (issue 36); /healthz keeps its own client and always asks S3
        fast = settings.model_copy(update={"s3_connect_timeout_s": settings.api_s3_connect_timeout_s,
                                           "s3_read_timeout_s": settings.api_s3_read_timeout_s, "s3_max_attempts": 1})
        store = BreakerStore(get_store(fast), settings.s3_breaker_failures, settings.s3_breaker_open_s)
        limits = Limits.from_url(settings.redis_url, settings.enqueue_timeout_s, settings.job_ttl_s)
        return cls(settings, store, jobs, make_sender(settings), get_store(quick), limits)

    def close(self) -> None:
        """Close the blocking clients (for users without an event loop: ``plateveil events consume``;
        the asyncio Redis client of the limits is only ever connected inside the API's loop)."""
        self.jobs.client.close()
        self.sender.close()

    async def aclose(self) -> None:
        self.close()
        await self.limits.aclose()

    def new_job(self, source_bucket: str, source_key: str | None, out_fmt: str, style: str,
                metadata: dict[str, str], source_ext: str = "img", key_id: str | None = None) -> ConcealJob:
        """A job with fresh id and output keys; ``source_key=None`` means a new upload, whose key
        in the originals bucket is ``<originals_prefix>/YYYY/MM/DD/<job_id>.<source_ext>``.
        ``key_id``: its owner (default: the request's key, :data:`producer.identity.current_key_id`)."""
        now = utc_now()
        job_id = new_job_id()
        if source_key is None:
            source_key = dated_key(self.settings.originals_prefix, job_id, source_ext, now)
        return ConcealJob(job_id=job_id, source_bucket=source_bucket, source_key=source_key,
                          output_bucket=self.settings.output_bucket,
                          output_key=dated_key(self.settings.output_prefix, job_id, extension_for(out_fmt), now),
                          style=style, accepted_at=iso_ms(now), metadata=metadata,
                          key_id=current_key_id.get() if key_id is None else key_id)

    def accept(self, job: ConcealJob, key_id: str = "-", upload: StoredObject | None = None) -> None:
        """Record ``queued`` first, then enqueue by task name; BrokerError if either fails. ``upload``: the
        original just stored, handed to the worker through Redis when small enough (``handoff_max_bytes``)."""
        if upload is not None and len(upload.data) > self.settings.handoff_max_bytes:
            upload = None
        self.jobs.create(JobRecord.queued(job), upload=upload, upload_ttl_s=self.settings.handoff_ttl_s)
        try:
            self.sender.send_task(TASK_CONCEAL, args=[job.to_dict()], task_id=job.job_id,
                                  queue=self.settings.queue)
        except Exception as exc:  # kombu/redis raise many connection error types
            logger.exception("could not enqueue job %s", job.job_id)
            try:
                # the client is told 503 (not accepted): no dead-letter entry. When Redis is down
                # this write fails too and the record stays ``queued``; the reconciler then
                # requeues it (processing a photo nobody waits for is harmless).
                self.jobs.finish(job.job_id, JobStatus.FAILED, error="could not enqueue (job queue unavailable)", job=job,
                                 dead_letter=False)
            except BrokerError:
                pass
            raise BrokerError(f"could not enqueue job: {exc}") from exc
        logger.info("queued job %s key=%s s3://%s/%s style=%s", job.job_id, key_id, job.source_bucket,
                    job.source_key, job.style)

    def health(self) -> dict[str, str]:
        """Per dependency "ok" or "down: <reason>" (scrubbed of addresses; shown only with a key)."""
        checks: dict[str, str] = {}
        try:
            self.jobs.ping()
            checks["redis"] = "ok"
        except BrokerError as exc:
            logger.warning("health: redis down: %s", exc)
            checks["redis"] = f"down: {scrub(str(exc))}"
        try:
            self.health_store.check([self.settings.originals_bucket, self.settings.output_bucket])
            checks[self.store.name] = "ok"
        except Exception as exc:  # any failure means "not healthy"; report it
            logger.warning("health: %s down: %s", self.store.name, exc)
            checks[self.store.name] = f"down: {scrub(str(exc))}"
        return checks
