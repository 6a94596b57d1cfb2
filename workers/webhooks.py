"""Sends the webhooks of finished jobs (see :mod:`workers.webhook_contract` for the contract).

The concealment task's run that ends a job (the one :meth:`plateveil.jobs.JobStore.end` says claimed
the end: done or failed, not a retry, not a duplicate delivery) hands the record it ended to
:func:`queue_webhook`; if ``PLATEVEIL_WEBHOOKS`` has a target for the job's ``key_id``, that queues
:data:`TASK_WEBHOOK` (same queue) with the completion event made from that record. That task
POSTs once per attempt and retries with exponential backoff (``PLATEVEIL_WEBHOOK_BACKOFF_S``,
doubling, at most ``PLATEVEIL_WEBHOOK_BACKOFF_MAX_S``) up to ``PLATEVEIL_WEBHOOK_MAX_ATTEMPTS``
attempts; then the delivery goes to the Redis list ``plateveil:webhooks:failed``. A slow
receiver never holds a photo job: deliveries are tasks of their own. The URL and secret are
never in the broker message, only the key id: the worker that sends looks them up.
"""

from __future__ import annotations

import logging

import httpx
from celery import Task

from plateveil.redisconn import redis_from_url
from plateveil.schema import CompletionEvent, JobRecord, iso_ms, utc_now
from workers import metrics as worker_metrics
from workers import webhook_contract as webhooks
from workers.celery_app import app, settings
from workers.settings import WorkerSettings

logger = logging.getLogger(__name__)

TASK_WEBHOOK = "plateveil.deliver_webhook"


def backoff(attempt: int) -> float:
    """Delay before attempt ``attempt + 1`` (``attempt`` starts at 1)."""
    return float(min(settings.webhook_backoff_s * 2 ** (attempt - 1), settings.webhook_backoff_max_s))


@app.task(name=TASK_WEBHOOK, bind=True, acks_late=True)
def deliver_webhook(self: Task, key_id: str, fields: dict[str, str], delivery_id: str) -> str:
    target = settings.webhooks.get(key_id)
    if target is None:
        logger.warning("webhook %s for %s dropped: no PLATEVEIL_WEBHOOKS entry any more", delivery_id, key_id)
        return "dropped"
    attempt = int(self.request.retries or 0) + 1
    try:
        status = webhooks.deliver(target, key_id, fields, delivery_id, timeout_s=settings.webhook_timeout_s,
                                  allow_private=settings.webhook_allow_private_urls)
        error = "" if 200 <= status < 300 else f"HTTP {status}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    if not error:
        logger.info("webhook %s (job %s) delivered to %s on attempt %d", delivery_id, fields.get("job_id"),
                    target.url, attempt)
        worker_metrics.webhook_sent("delivered")
        return "delivered"
    if attempt < settings.webhook_max_attempts:
        delay = backoff(attempt)
        logger.warning("webhook %s (job %s) to %s failed (%s); attempt %d/%d again in %.1f s", delivery_id,
                       fields.get("job_id"), target.url, error, attempt, settings.webhook_max_attempts, delay)
        worker_metrics.webhook_sent("retried")
        raise self.retry(countdown=delay, max_retries=settings.webhook_max_attempts)
    logger.error("webhook %s (job %s) to %s failed for good after %d attempts: %s", delivery_id,
                 fields.get("job_id"), target.url, attempt, error)
    worker_metrics.webhook_sent("failed")
    # a client of its own for this rare write (the task module imports this one, not the other way round)
    client = redis_from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=5)
    try:
        webhooks.record_failure(client, key_id=key_id, url=target.url, delivery_id=delivery_id, fields=fields,
                                attempts=attempt, error=error, failed_at=iso_ms(utc_now()))
    finally:
        client.close()
    return "failed"


def queue_webhook(record: JobRecord, worker_settings: WorkerSettings) -> str | None:
    """Queue the webhook of a job that just ended (``record``: as ended, never read back) if its key has
    one; returns the delivery id. Called once per job, by the run that ended it."""
    if not record.status.finished or record.key_id not in worker_settings.webhooks:
        return None
    delivery_id = webhooks.new_delivery_id()
    deliver_webhook.apply_async(args=[record.key_id, CompletionEvent.of(record).to_fields(), delivery_id],
                                queue=worker_settings.queue)
    return delivery_id
