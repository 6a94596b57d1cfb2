"""Event intake endpoints besides ``POST /v1/s3-events``:

* ``POST /v1/events/sns``: Amazon SNS HTTP(S) delivery. No API key (SNS cannot send one): the
  message must come from a topic in ``PLATEVEIL_SNS_TOPIC_ARNS`` and carry a valid SNS signature.
  Subscription confirmations are confirmed (an allowed ``SubscribeURL`` only); notifications
  whose ``Message`` is an S3 or MinIO notification make jobs. 404 when SNS intake is off.
* ``POST /v1/events/minio``: MinIO's webhook target (``auth_token`` = an API key), MinIO's own
  format (``EventName``, ``Key``, S3-like ``Records`` with ``s3:``-prefixed event names).

Both answer 5xx when S3 or Redis is down, so the sender redelivers; the intake is idempotent per
object version (:func:`producer.intake.intake.submit_record`).
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool

from plateveil.errors import BrokerError, StorageError
from producer.deps import AUTH_RESPONSES, require_api_key
from producer.intake import sns
from producer.intake.intake import Outcome, submit_record
from producer.intake.records import NotificationError, parse_body, parse_notification
from producer.responses import Accepted, EventsAccepted, Skipped
from producer.services import Services

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/events")
SNS_MAX_BYTES = 300 * 1024  # SNS messages are at most 256 KiB, plus the envelope


def _answer(request: Request, outcomes: list[Outcome]) -> EventsAccepted:
    accepted, skipped = [], []
    for o in outcomes:
        if o.job is not None:
            job = o.job
            accepted.append(Accepted(job_id=job.job_id, status="queued",
                                     status_url=str(request.url_for("get_job", job_id=job.job_id)),
                                     source_bucket=job.source_bucket, source_key=job.source_key,
                                     output_bucket=job.output_bucket, output_key=job.output_key,
                                     sidecar_key=job.sidecar_key, style=job.style, accepted_at=job.accepted_at))
        else:
            skipped.append(Skipped(bucket=o.record.bucket, key=o.record.key, reason=o.skipped or ""))
    return EventsAccepted(accepted=accepted, skipped=skipped)


async def _submit_all(svc: Services, doc_records: list[Any], sender: str) -> list[Outcome]:
    """One outcome per record (``sender``: the key id, or ``sns``, whose sources apply)."""
    outcomes = []
    for record in doc_records:
        try:
            outcomes.append(await run_in_threadpool(submit_record, svc, record, None, None, sender))
        except (StorageError, BrokerError) as exc:
            logger.warning("503: event intake: %s", exc)
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "storage or job queue temporarily "
                                "unavailable; retry later", headers={"Retry-After": "5"}) from exc
    return outcomes


async def _read_limited(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"notification larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _certificates(request: Request) -> sns.CertificateCache:
    cache = getattr(request.app.state, "sns_certificates", None)
    settings = request.app.state.services.settings
    if cache is None or cache.url_pattern.pattern != settings.sns_cert_url_pattern:
        cache = sns.CertificateCache(settings.sns_cert_url_pattern, settings.sns_fetch_timeout_s)
        request.app.state.sns_certificates = cache
    return cache


@router.post("/sns", response_model=EventsAccepted, responses={
    **{k: v for k, v in AUTH_RESPONSES.items() if k not in (401, 429)},
    403: {"description": "not from an allowed topic, or a bad signature"}, 404: {"description": "SNS intake off"}})
async def sns_delivery(request: Request) -> EventsAccepted:
    """Amazon SNS HTTP(S) subscription endpoint (signature-verified, no API key)."""
    svc: Services = request.app.state.services
    settings = svc.settings
    if not settings.sns_topic_arns:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "SNS intake is off (PLATEVEIL_SNS_TOPIC_ARNS is empty)")
    body = await _read_limited(request, SNS_MAX_BYTES)
    try:
        msg = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "not an SNS message (not JSON)") from None
    if not isinstance(msg, dict):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "not an SNS message")
    if msg.get("TopicArn") not in settings.sns_topic_arns:
        logger.warning("SNS message from topic %r refused: not in PLATEVEIL_SNS_TOPIC_ARNS", msg.get("TopicArn"))
        raise HTTPException(status.HTTP_403_FORBIDDEN, "topic not allowed")
    try:
        await run_in_threadpool(sns.verify_message, msg, _certificates(request))
    except sns.SnsError as exc:
        logger.warning("SNS message %s refused: %s", msg.get("MessageId"), exc)
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    kind = msg["Type"]
    if kind == "SubscriptionConfirmation":
        try:
            url = await run_in_threadpool(sns.confirm_subscription, msg, settings.sns_subscribe_url_pattern,
                                          settings.sns_fetch_timeout_s)
        except sns.SnsError as exc:
            logger.warning("SNS subscription to %s not confirmed: %s", msg.get("TopicArn"), exc)
            raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
        logger.info("confirmed the SNS subscription to %s (%s)", msg["TopicArn"], url.split("?")[0])
        return EventsAccepted(accepted=[], skipped=[])
    if kind == "UnsubscribeConfirmation":
        logger.warning("SNS says the subscription to %s was removed", msg["TopicArn"])
        return EventsAccepted(accepted=[], skipped=[])
    try:
        records = parse_body(str(msg.get("Message", "")))
    except NotificationError as exc:
        # signed by SNS but not a notification: a retry cannot help; answer 200 so SNS drops it
        logger.warning("SNS message %s is not an object notification: %s", msg.get("MessageId"), exc)
        return EventsAccepted(accepted=[], skipped=[])
    return _answer(request, await _submit_all(svc, records, "sns"))


@router.post("/minio", status_code=status.HTTP_202_ACCEPTED, response_model=EventsAccepted,
             responses={**AUTH_RESPONSES})
async def minio_delivery(request: Request, key_id: Annotated[str, Depends(require_api_key)]) -> EventsAccepted:
    """MinIO webhook target (set its ``auth_token`` to an API key; the key's sources apply)."""
    svc: Services = request.app.state.services
    body = await _read_limited(request, SNS_MAX_BYTES)
    try:
        records = parse_notification(json.loads(body))
    except (json.JSONDecodeError, UnicodeDecodeError, NotificationError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"not a MinIO/S3 notification: {exc}") from None
    return _answer(request, await _submit_all(svc, records, key_id))
