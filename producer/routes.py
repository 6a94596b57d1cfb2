"""The ``/v1`` endpoints: upload a photo, conceal a photo already in S3, and read a job's status
(S3 event notifications: :mod:`producer.intake.routes`). Blocking I/O (S3, Redis) runs in the thread pool.

Authentication, rate limits and body limits are enforced before any route runs, by
:class:`producer.guard.RequestGuard`; the routes find the caller's key id in the scope and use it
for the source allowlist and the key's share of the queue. Client errors are 4xx with a reason;
503 means a dependency (S3, Redis) is down and never carries its address.
"""

from __future__ import annotations

import logging
import math
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile, status
from fastapi.concurrency import run_in_threadpool

from plateveil.errors import BrokerError, StorageError
from plateveil.imaging import DECODABLE, animation, output_format, sniff_image
from plateveil.schema import STYLES, ConcealJob, content_type_for, extension_for, format_for
from plateveil.storage import StoredObject
from producer.deps import AUTH_RESPONSES, KeyId, ServicesDep
from producer.limits import QueueShareFull
from producer.ownership import may_read_object, owns
from producer.responses import Accepted, JobRequest, JobView
from producer.services import Services
from producer.validation import (
    META_MAX_BYTES,
    InputError,
    check_bucket,
    check_key,
    check_metadata,
    loads_checked,
    scrub,
    source_allowed,
)

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1")
NOT_FOUND = "no such object, or this API key may not read it"


def _check_style(style: str | None, svc: Services) -> str:
    style = style or svc.settings.default_style
    if style not in STYLES:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"unknown style {str(style)[:40]!r}; valid styles: {', '.join(STYLES)}")
    return style


def _bad(exc: InputError) -> HTTPException:
    return HTTPException(exc.status, str(exc))


def _too_large(svc: Services) -> HTTPException:
    return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                         f"photo larger than {svc.settings.max_upload_bytes} bytes")


def _unavailable(what: str, exc: Exception) -> HTTPException:
    logger.warning("503: %s unavailable: %s", what, exc)
    retry_after = getattr(exc, "retry_after_s", 5)   # the S3 circuit breaker says when it tries again
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"{what} temporarily unavailable; retry later",
                         headers={"Retry-After": str(max(1, math.ceil(retry_after)))})


def _accepted(request: Request, job: ConcealJob) -> Accepted:
    return Accepted(job_id=job.job_id, status="queued", status_url=str(request.url_for("get_job", job_id=job.job_id)),
                    source_bucket=job.source_bucket, source_key=job.source_key, output_bucket=job.output_bucket,
                    output_key=job.output_key, sidecar_key=job.sidecar_key, style=job.style,
                    accepted_at=job.accepted_at)


async def _admit(svc: Services, key_id: str, jobs: list[ConcealJob]) -> None:
    """Count ``jobs`` against the key's share of the queue (429 + Retry-After when full)."""
    try:
        await svc.limits.admit(key_id, [j.job_id for j in jobs], svc.settings.key_max_inflight,
                               svc.settings.queue_retry_after_s, svc.settings.key_inflight_max_age_s)
    except QueueShareFull as exc:
        logger.warning("429 key %s: queue share of %d jobs reached", key_id, exc.share)
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                            f"this key already has {exc.share} jobs queued or running (its share of the "
                            "queue); retry when some have finished",
                            headers={"Retry-After": str(exc.retry_after_s)}) from None
    except BrokerError as exc:
        raise _unavailable("job queue", exc) from exc


async def _release(svc: Services, key_id: str, jobs: list[ConcealJob]) -> None:
    try:
        await svc.limits.release(key_id, [j.job_id for j in jobs])
    except BrokerError:
        logger.warning("could not release %d queue slots of key %s (they expire with the jobs)", len(jobs), key_id)


async def _accept(svc: Services, key_id: str, job: ConcealJob, upload: StoredObject | None = None) -> None:
    try:
        await run_in_threadpool(svc.accept, job, key_id, upload)
    except BrokerError as exc:
        await _release(svc, key_id, [job])
        raise _unavailable("job queue", exc) from exc


async def _read_raw_body(request: Request, limit: int, svc: Services) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(svc)
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_metadata(text: str | None, svc: Services) -> dict[str, str]:
    if not text:
        return {}
    if len(text) > 2 * META_MAX_BYTES:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"metadata must be at most {META_MAX_BYTES} bytes")
    try:
        return check_metadata(loads_checked(text, svc.settings.json_max_depth, svc.settings.json_max_number_chars))
    except InputError as exc:
        raise _bad(exc) from None


@router.post("/photos", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted,
             responses={**AUTH_RESPONSES, 415: {"description": "not a supported image"}})
async def upload_photo(
    request: Request,
    svc: ServicesDep,
    key_id: KeyId,
    file: Annotated[UploadFile | None, File(description="the photo (multipart); or send a raw image/* body")] = None,
    style: Annotated[str | None, Form(description=f"one of {', '.join(STYLES)}")] = None,
    metadata: Annotated[str | None, Form(description="JSON object of short string fields kept with the job")] = None,
    style_param: Annotated[str | None, Query(alias="style", description="style, for raw-body uploads")] = None,
) -> Accepted:
    """Store the photo in the originals bucket and queue a concealment job (202)."""
    limit = svc.settings.max_upload_bytes
    content_type = request.headers.get("content-type", "")
    if file is not None:
        data = await file.read(limit + 1)
        await file.close()
    elif content_type.startswith("image/"):
        data = await _read_raw_body(request, limit, svc)
    else:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            "send the photo as multipart field 'file' or as a raw body with an image/* content type")
    if len(data) > limit:
        raise _too_large(svc)
    fmt = sniff_image(data)
    if fmt is None or fmt not in DECODABLE:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                            f"not a supported image ({fmt or 'unknown signature'}); send one of: {', '.join(DECODABLE)}")
    moving = animation(data, fmt)
    if moving:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, moving)
    chosen_style = _check_style(style or style_param, svc)
    clean_meta = _parse_metadata(metadata, svc)

    job = svc.new_job(svc.settings.originals_bucket, None, output_format(fmt), chosen_style, clean_meta,
                      source_ext=extension_for(fmt), key_id=key_id)
    await _admit(svc, key_id, [job])
    try:
        stored = await run_in_threadpool(svc.store.put, job.source_bucket, job.source_key, data,
                                         content_type_for(fmt), clean_meta | {"job-id": job.job_id, "api-key-id": key_id})
    except StorageError as exc:
        await _release(svc, key_id, [job])
        raise _unavailable("storage", exc) from exc
    await _accept(svc, key_id, job, StoredObject(stored, data))
    return _accepted(request, job)


def _check_source(svc: Services, key_id: str, bucket: str, key: str) -> None:
    """422 for a malformed bucket or key; 404 (the same as a missing object) when not allowed."""
    try:
        check_bucket(bucket)
        check_key(key)
    except InputError as exc:
        raise _bad(exc) from None
    if not source_allowed(bucket, key, svc.settings.sources_for(key_id)):
        logger.info("key %s may not read s3://%s/%s (answered as not found)", key_id, bucket, key)
        raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)


async def _job_for_object(svc: Services, key_id: str, bucket: str, key: str, style: str,
                          metadata: dict[str, str]) -> ConcealJob:
    """A job for an allowed object already in storage; HTTPException 404/413/415 when it cannot be
    one (another key's upload, or the output bucket, is the same 404 as a missing object)."""
    try:
        info = await run_in_threadpool(svc.store.head, bucket, key)
    except StorageError as exc:
        raise _unavailable("storage", exc) from exc
    if info is None or not may_read_object(svc.settings, key_id, info):
        if info is not None:
            logger.info("key %s may not read s3://%s/%s (another key's upload; answered as not found)",
                        key_id, bucket, key)
        raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
    if info.size > svc.settings.max_upload_bytes:
        raise _too_large(svc)
    fmt = format_for(info.content_type, key)
    if fmt is None or fmt not in DECODABLE:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                            "not a supported image by content type or extension")
    return svc.new_job(bucket, key, output_format(fmt), style, metadata, key_id=key_id)


@router.post("/jobs", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted,
             responses={**AUTH_RESPONSES, 404: {"description": "no such object, or not allowed for this key"},
                        415: {"description": "not an image"}})
async def create_job(request: Request, svc: ServicesDep, key_id: KeyId, body: JobRequest) -> Accepted:
    """Queue a concealment job for a photo already in S3, in a source this key may read
    (checked before a HEAD; "not allowed" and "not found" are the same 404)."""
    style = _check_style(body.style, svc)
    try:
        meta = check_metadata(body.metadata)
    except InputError as exc:
        raise _bad(exc) from None
    _check_source(svc, key_id, body.bucket, body.key)
    job = await _job_for_object(svc, key_id, body.bucket, body.key, style, meta)
    await _admit(svc, key_id, [job])
    await _accept(svc, key_id, job)
    return _accepted(request, job)


@router.get("/jobs/{job_id}", response_model=JobView, name="get_job",
            responses={**AUTH_RESPONSES, 404: {"description": "unknown job"}})
def get_job(request: Request, svc: ServicesDep, key_id: KeyId, job_id: str) -> JobView:
    """A job's status, plates found, output location, model version and timings; only for the key
    that made the job (404 for any other, the same answer as an unknown id)."""
    if len(job_id) > 64 or not job_id.isalnum():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such job")
    try:
        record = svc.jobs.get(job_id)
    except BrokerError as exc:
        raise _unavailable("job store", exc) from exc
    if record is None or not owns(record, key_id):
        if record is not None:
            logger.info("key %s asked for job %s of another key (answered as unknown)", key_id, job_id)
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id!r}")
    view = record.to_dict() | {"error": scrub(record.error)}
    return JobView(**view, status_url=str(request.url_for("get_job", job_id=job_id)))
