"""The Celery app: ``celery -A workers.celery_app worker -Q plateveil.conceal``.

Settings are read once, here, at import (start-up); a bad environment stops the worker with a
message naming the variables. The choices below are deliberate:

* ``task_acks_late`` + ``task_reject_on_worker_lost``: a job is acknowledged only after it
  finished, so a worker killed mid-job (OOM, node drain, hard time limit) does not lose it: Redis
  redelivers it. Our job store counts deliveries and fails a job that keeps killing workers
  (``PLATEVEIL_MAX_DELIVERIES``) instead of looping forever.
* ``unacked_mutex_expire`` = 2 x ``restore_interval_s`` (kombu's default is 300 s): the sweep
  takes a Redis lock; a worker SIGKILLed while holding it blocked every sweep of the fleet for
  5 minutes (found by ``make soak``: a job stuck unacknowledged 4 minutes). The sweep's own
  restores are transactions (WATCH), so a lock that lapses early costs nothing.
* ``task_acks_on_timeout=False``: a job killed by the hard time limit goes back on the queue
  (as for a lost worker process) instead of being acknowledged and forgotten; each such start
  counts as unfinished, so a photo that stalls the worker every time fails after
  ``max_deliveries`` starts with that reason.
* ``worker_prefetch_multiplier=1``: a process reserves one job at a time; photos take
  ~0.1-1 s, so prefetching only makes queues unfair and loses more on a crash.
* broker ``visibility_timeout`` (default 90 s) is how long a dead worker's job waits before Redis
  hands it to another worker: a worker sweeps the unacknowledged jobs every
  ``restore_interval_s`` (10 s) and delivers again those delivered more than the visibility
  timeout ago, so a job whose worker was SIGKILLed is running again within about 100 s. It must
  exceed the hard time limit plus the largest retry delay (a retry waits in a worker's memory
  as an unacknowledged ETA message), or Redis would hand a still-running job to a second worker
  (checked at start-up). Even then a redelivery can overlap a live run (a worker stalled past it,
  many retries falling due at once): the job store makes that harmless (one output key per job,
  a job already finished is skipped, one completion event). See docs/reliability.md.
* soft/hard time limits (20 s / 30 s): the soft limit raises inside the task and the job fails
  as "timed out"; the hard limit kills a stuck process. (Enforced by the prefork pool only.)
* JSON only (no pickle): payloads are plain dicts from :mod:`plateveil.schema`.
* no result backend: status lives in our own Redis job store (:mod:`plateveil.jobs`).
* ``worker_cancel_long_running_tasks_on_connection_loss``: with late acks, jobs running when
  the broker connection drops will be redelivered anyway, so they are cancelled, not duplicated.
"""

from __future__ import annotations

from celery import Celery

from plateveil.redisconn import celery_broker
from plateveil.settings import load_settings
from workers import logs as worker_logs
from workers import metrics as worker_metrics
from workers.settings import WorkerSettings

settings = load_settings(WorkerSettings)
worker_metrics.install(settings)  # the per-worker exporter (multiprocess mode), started with the worker
worker_logs.install(settings)  # PLATEVEIL_LOG_FORMAT/LEVEL; job_id and key_id on every line of a job


def create_celery_app(settings: WorkerSettings) -> Celery:
    broker = celery_broker(settings.redis_url, {"visibility_timeout": settings.visibility_timeout_s,
                                                "unacked_restore_interval": settings.restore_interval_s,
                                                "unacked_restore_throttle": 1,
                                                "unacked_mutex_expire": 2 * settings.restore_interval_s})
    app = Celery("plateveil", broker=broker.url, include=["workers.tasks", "workers.webhooks"])
    app.conf.update(
        broker_use_ssl=broker.use_ssl,  # rediss:// URLs
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_timeout=False,
        worker_prefetch_multiplier=1,
        broker_transport_options=broker.transport_options,  # + master_name with Redis Sentinel
        broker_connection_retry_on_startup=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_soft_time_limit=settings.soft_time_limit_s,
        task_time_limit=settings.hard_time_limit_s,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        task_default_queue=settings.queue,
        task_create_missing_queues=True,
        worker_send_task_events=False,
        worker_hijack_root_logger=True,
    )
    return app


app = create_celery_app(settings)
