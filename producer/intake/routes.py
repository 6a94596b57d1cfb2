"""The HTTP intake endpoints; every one hands its records to
:func:`producer.intake.intake.submit_batch` (caps, sources, filters, share, rate, duplicates):

* ``POST /v1/s3-events``: an S3 event notification, with an API key (that key's sources, share and
  rate; its jobs). The whole document is checked first: shape and names of every record (422 naming
  the record) and the record cap (413), before any S3 or Redis call.
* ``POST /v1/events/minio``: MinIO's webhook target (``auth_token`` = an API key), MinIO's own
  format (``EventName``, ``Key``, S3-like ``Records`` with ``s3:``-prefixed event names); malformed
  names are skipped with the reason (MinIO cannot do anything about them).
* ``POST /v1/events/sns``: Amazon SNS HTTP(S) delivery. No API key (SNS cannot send one): the
  message must come from a topic in ``PLATEVEIL_SNS_TOPIC_ARNS`` and carry a valid SNS signature.
  Subscription confirmations are confirmed (an allowed ``SubscribeURL`` only); notifications
  whose ``Message`` is an S3 or MinIO notification make jobs of ``PLATEVEIL_SNS_KEY_ID``. 404 when
  SNS intake is off.

When the sender's share or rate runs out part-way, the answer is 429 + ``Retry-After`` (503 for
SNS, which retries only 5xx) listing what was done and what was not; S3 or Redis down is 503. A
retry is always safe: the intake makes one job per object version.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from plateveil.errors import BrokerError, StorageError
from producer.deps import AUTH_RESPONSES, require_api_key
from producer.intake import sns
from producer.intake.intake import BatchResult, Outcome, submit_batch
from producer.intake.records import (
    NotificationError,
    ObjectRecord,
    TooManyRecords,
    parse_body,
    parse_notification,
)
from producer.responses import Accepted, EventsAccepted, EventsRefused, Skipped
from producer.services import Services
from producer.validation import InputError, check_bucket, check_key

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/events")
s3_router = APIRouter(prefix="/v1")
SNS_MAX_BYTES = 300 * 1024  # SNS messages are at most 256 KiB, plus the envelope
_RECORD = {"type": "object", "description": "an S3 event record", "required": ["s3"], "properties": {
    "eventName": {"type": "string", "examples": ["ObjectCreated:Put", "s3:ObjectCreated:Put"]},
    "s3": {"type": "object", "required": ["bucket", "object"], "properties": {
        "bucket": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
        "object": {"type": "object", "required": ["key"], "properties": {
            "key": {"type": "string", "description": "URL-encoded"}, "eTag": {"type": "string"},
            "versionId": {"type": "string"}, "size": {"type": "integer"}}}}}}}
_NOTIFICATION = {"type": "object", "description": "an S3 (or MinIO) event notification", "properties": {
    "Records": {"type": "array", "items": _RECORD}, "EventName": {"type": "string"}, "Key": {"type": "string"}}}
_NOTIFICATION_BODY = {"content": {"application/json": {"schema": _NOTIFICATION}}, "required": True}
_SNS_BODY = {"content": {"text/plain": {"schema": {"type": "string", "description": "an SNS message (JSON)"}},
                         "application/json": {"schema": {"type": "object"}}}, "required": True}
_REFUSED = {"model": EventsRefused, "description": "the key's share or rate ran out part-way (Retry-After); "
            "or the guard's rate / failed-auth limit"}


def _accepted(request: Request, outcome: Outcome) -> Accepted:
    job = outcome.job
    assert job is not None
    return Accepted(job_id=job.job_id, status="queued", status_url=str(request.url_for("get_job", job_id=job.job_id)),
                    source_bucket=job.source_bucket, source_key=job.source_key, output_bucket=job.output_bucket,
                    output_key=job.output_key, sidecar_key=job.sidecar_key, style=job.style,
                    accepted_at=job.accepted_at)


def _skipped(record: ObjectRecord, reason: str) -> Skipped:
    return Skipped(bucket=record.bucket[:255], key=record.key[:1024], reason=reason)


def _answer(request: Request, result: BatchResult, refused_status: int = status.HTTP_429_TOO_MANY_REQUESTS
            ) -> EventsAccepted | JSONResponse:
    accepted = [_accepted(request, o) for o in result.outcomes if o.job is not None]
    duplicates = [_skipped(o.record, o.skipped or "") for o in result.outcomes if o.duplicate]
    skipped = [_skipped(o.record, o.skipped or "") for o in result.outcomes if o.job is None and not o.duplicate]
    if result.refused is None:
        return EventsAccepted(accepted=accepted, skipped=skipped, duplicates=duplicates)
    refused = result.refused
    body = EventsRefused(detail=refused.detail, accepted=accepted, skipped=skipped, duplicates=duplicates,
                         not_processed=[_skipped(r, f"not processed: {refused.reason} used up; retry")
                                        for r in result.not_processed])
    return JSONResponse(body.model_dump(), status_code=refused_status,
                        headers={"Retry-After": str(refused.retry_after_s)})


async def _submit(svc: Services, records: list[ObjectRecord], sender: str, paid: int) -> BatchResult:
    try:
        return await run_in_threadpool(submit_batch, svc, records, sender, None, paid)
    except TooManyRecords as exc:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, str(exc)) from None
    except (StorageError, BrokerError) as exc:
        logger.warning("503: event intake: %s", exc)
        what = "storage" if isinstance(exc, StorageError) else "job queue"
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"{what} temporarily unavailable; retry later",
                            headers={"Retry-After": "5"}) from exc


def _parse(doc: Any, max_records: int, strict: bool) -> list[ObjectRecord]:
    """The records of a notification: 413 over the cap, 422 naming a malformed record (``strict``:
    also a bad bucket name or key, before anything is done)."""
    try:
        records = parse_notification(doc, max_records)
    except TooManyRecords as exc:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, str(exc)) from None
    except NotificationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    if strict:
        for n, record in enumerate(records):
            try:
                check_bucket(record.bucket)
                check_key(record.key)
            except InputError as exc:
                raise HTTPException(exc.status, f"record {n}: {exc}") from None
    return records


@s3_router.post("/s3-events", status_code=status.HTTP_202_ACCEPTED, response_model=EventsAccepted,
                openapi_extra={"requestBody": _NOTIFICATION_BODY}, responses={**AUTH_RESPONSES, 429: _REFUSED})
async def s3_events(request: Request, key_id: Annotated[str, Depends(require_api_key)],
                    notification: Annotated[dict[str, Any], Body()]) -> Any:
    """Take an S3 event notification; queue one job per created object version (other events are
    ignored, and so are objects in the output bucket, so its notifications cannot loop).

    At most ``PLATEVEIL_MAX_EVENT_RECORDS`` records (413); a malformed record is a 422 naming it,
    before anything is done. An object version that already has a job (whatever the notification
    says its version is: the HEAD decides) is listed under ``duplicates``, so a retry is safe."""
    svc: Services = request.app.state.services
    records = _parse(notification, svc.settings.max_event_records, strict=True)
    return _answer(request, await _submit(svc, records, key_id, paid=1))


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


@router.post("/sns", response_model=EventsAccepted, openapi_extra={"requestBody": _SNS_BODY}, responses={
    **{k: v for k, v in AUTH_RESPONSES.items() if k not in (401, 429, 503)},
    403: {"description": "not from an allowed topic, or a bad signature"}, 404: {"description": "SNS intake off"},
    503: {"model": EventsRefused, "description": "S3 or Redis down, or the SNS identity's share or rate ran out "
          "part-way (Retry-After; SNS redelivers)"}})
async def sns_delivery(request: Request) -> Any:
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
        records = parse_body(str(msg.get("Message", "")), settings.max_event_records)
    except TooManyRecords as exc:
        logger.warning("SNS message %s refused: %s", msg.get("MessageId"), exc)
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, str(exc)) from None
    except NotificationError as exc:
        # signed by SNS but not a notification: a retry cannot help; answer 200 so SNS drops it
        logger.warning("SNS message %s is not an object notification: %s", msg.get("MessageId"), exc)
        return EventsAccepted(accepted=[], skipped=[])
    # SNS retries 5xx only: a share or rate stop is a 503 so the rest comes back
    return _answer(request, await _submit(svc, records, settings.sns_key_id, paid=0),
                   refused_status=status.HTTP_503_SERVICE_UNAVAILABLE)


@router.post("/minio", status_code=status.HTTP_202_ACCEPTED, response_model=EventsAccepted,
             openapi_extra={"requestBody": _NOTIFICATION_BODY}, responses={**AUTH_RESPONSES, 429: _REFUSED})
async def minio_delivery(request: Request, key_id: Annotated[str, Depends(require_api_key)]) -> Any:
    """MinIO webhook target (set its ``auth_token`` to an API key; the key's sources, share and rate
    apply and the jobs are its own). At most ``PLATEVEIL_MAX_EVENT_RECORDS`` records (413)."""
    svc: Services = request.app.state.services
    body = await _read_limited(request, SNS_MAX_BYTES)
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"not a MinIO/S3 notification: {str(exc)[:200]}") from None
    records = _parse(doc, svc.settings.max_event_records, strict=False)
    return _answer(request, await _submit(svc, records, key_id, paid=1))
