"""The ``/v1`` endpoints: upload a photo, conceal a photo already in S3, take S3 event
notifications, and read a job's status. Blocking I/O (S3, Redis) runs in the thread pool."""

from __future__ import annotations

import hmac
import json
import logging
import re
from typing import Annotated, Any
from urllib.parse import unquote_plus

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from plateveil.errors import BrokerError, StorageError
from plateveil.imaging import DECODABLE, output_format, sniff_image
from plateveil.schema import STYLES, ConcealJob, content_type_for, extension_for, format_for
from producer.responses import Accepted, EventsAccepted, JobRequest, JobView, Skipped
from producer.services import Services

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1")
_bearer = HTTPBearer(auto_error=False, description="an API key from PLATEVEIL_API_KEYS")
_META_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_META_MAX_BYTES = 2048
_MULTIPART_OVERHEAD = 64 * 1024


def services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(services)]


def require_api_key(request: Request,
                    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    keys = services(request).settings.api_keys
    given = creds.credentials.encode() if creds is not None else b""
    # compare against every key (no early exit) so timing does not tell which prefix matched
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(given, key.encode())
    if creds is None or not ok:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or invalid API key",
                            headers={"WWW-Authenticate": "Bearer"})


def _check_style(style: str | None, svc: Services) -> str:
    style = style or svc.settings.default_style
    if style not in STYLES:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"unknown style {style!r}; valid styles: {', '.join(STYLES)}")
    return style


def _check_metadata(meta: dict[str, Any]) -> dict[str, str]:
    out = {}
    for name, value in meta.items():
        if not _META_NAME.match(str(name)) or not isinstance(value, str | int | float | bool):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                f"bad metadata field {name!r}: names are [a-z0-9_-], values scalars")
        out[str(name)] = str(value)
    if len(json.dumps(out).encode()) > _META_MAX_BYTES or not all(v.isascii() for v in out.values()):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"metadata must be ASCII and at most {_META_MAX_BYTES} bytes")
    return out


def _too_large(svc: Services) -> HTTPException:
    return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                         f"photo larger than {svc.settings.max_upload_bytes} bytes")


def _unavailable(exc: Exception) -> HTTPException:
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"temporarily unavailable: {exc}",
                         headers={"Retry-After": "5"})


def _accepted(request: Request, job: ConcealJob) -> Accepted:
    return Accepted(job_id=job.job_id, status="queued", status_url=str(request.url_for("get_job", job_id=job.job_id)),
                    source_bucket=job.source_bucket, source_key=job.source_key, output_bucket=job.output_bucket,
                    output_key=job.output_key, sidecar_key=job.sidecar_key, style=job.style,
                    accepted_at=job.accepted_at)


async def _accept(svc: Services, job: ConcealJob) -> None:
    try:
        await run_in_threadpool(svc.accept, job)
    except BrokerError as exc:
        raise _unavailable(exc) from exc


async def _read_raw_body(request: Request, limit: int, svc: Services) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(svc)
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/photos", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted,
             dependencies=[Depends(require_api_key)],
             responses={401: {"description": "missing or wrong API key"}, 413: {"description": "photo too large"},
                        415: {"description": "not a supported image"}, 503: {"description": "S3 or Redis down"}})
async def upload_photo(
    request: Request,
    svc: ServicesDep,
    file: Annotated[UploadFile | None, File(description="the photo (multipart); or send a raw image/* body")] = None,
    style: Annotated[str | None, Form(description=f"one of {', '.join(STYLES)}")] = None,
    metadata: Annotated[str | None, Form(description="JSON object of short string fields kept with the job")] = None,
    style_param: Annotated[str | None, Query(alias="style", description="style, for raw-body uploads")] = None,
) -> Accepted:
    """Store the photo in the originals bucket and queue a concealment job (202)."""
    limit = svc.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + _MULTIPART_OVERHEAD:
        raise _too_large(svc)
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
    chosen_style = _check_style(style or style_param, svc)
    meta: dict[str, Any] = {}
    if metadata:
        try:
            meta = json.loads(metadata)
        except json.JSONDecodeError:
            meta = None  # type: ignore[assignment]
        if not isinstance(meta, dict):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "metadata must be a JSON object")
    clean_meta = _check_metadata(meta)

    job = svc.new_job(svc.settings.originals_bucket, None, output_format(fmt), chosen_style, clean_meta,
                      source_ext=extension_for(fmt))
    try:
        await run_in_threadpool(svc.store.put, job.source_bucket, job.source_key, data, content_type_for(fmt),
                                clean_meta | {"job-id": job.job_id})
    except StorageError as exc:
        raise _unavailable(exc) from exc
    await _accept(svc, job)
    return _accepted(request, job)


async def _job_for_object(svc: Services, bucket: str, key: str, style: str,
                          metadata: dict[str, str]) -> ConcealJob:
    """A job for an object already in storage; HTTPException 404/413/415 when it cannot be one."""
    try:
        info = await run_in_threadpool(svc.store.head, bucket, key)
    except StorageError as exc:
        raise _unavailable(exc) from exc
    if info is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"s3://{bucket}/{key} does not exist")
    if info.size > svc.settings.max_upload_bytes:
        raise _too_large(svc)
    fmt = format_for(info.content_type, key)
    if fmt is None or fmt not in DECODABLE:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                            f"s3://{bucket}/{key} is not a supported image by content type "
                            f"({info.content_type}) or extension")
    return svc.new_job(bucket, key, output_format(fmt), style, metadata)


@router.post("/jobs", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted,
             dependencies=[Depends(require_api_key)],
             responses={404: {"description": "no such object"}, 415: {"description": "not an image"}})
async def create_job(request: Request, svc: ServicesDep, body: JobRequest) -> Accepted:
    """Queue a concealment job for a photo that is already in S3 (checked with a HEAD)."""
    style = _check_style(body.style, svc)
    job = await _job_for_object(svc, body.bucket, body.key, style, _check_metadata(body.metadata))
    await _accept(svc, job)
    return _accepted(request, job)


@router.post("/s3-events", status_code=status.HTTP_202_ACCEPTED, response_model=EventsAccepted,
             dependencies=[Depends(require_api_key)])
async def s3_events(request: Request, svc: ServicesDep, notification: dict[str, Any]) -> EventsAccepted:
    """Take an S3 event notification; queue one job per created object (other events are ignored).

    Objects in the output bucket are skipped, so pointing the output bucket's notifications here
    cannot loop.
    """
    accepted: list[Accepted] = []
    skipped: list[Skipped] = []
    records = notification.get("Records")
    if not isinstance(records, list):
        if notification.get("Event") == "s3:TestEvent":
            return EventsAccepted(accepted=[], skipped=[])
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "expected an S3 event notification with Records")
    style = svc.settings.default_style
    for record in records:
        try:
            event_name = str(record.get("eventName", ""))
            bucket = str(record["s3"]["bucket"]["name"])
            key = unquote_plus(str(record["s3"]["object"]["key"]))
        except (KeyError, TypeError, AttributeError):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                "each record needs s3.bucket.name and s3.object.key") from None
        if not event_name.startswith("ObjectCreated"):
            skipped.append(Skipped(bucket=bucket, key=key, reason=f"ignored event {event_name or '(none)'}"))
            continue
        if bucket == svc.settings.output_bucket:
            skipped.append(Skipped(bucket=bucket, key=key, reason="object is in the output bucket"))
            continue
        try:
            job = await _job_for_object(svc, bucket, key, style, {})
        except HTTPException as exc:
            if exc.status_code == status.HTTP_503_SERVICE_UNAVAILABLE:
                raise
            skipped.append(Skipped(bucket=bucket, key=key, reason=str(exc.detail)))
            continue
        await _accept(svc, job)
        accepted.append(_accepted(request, job))
    return EventsAccepted(accepted=accepted, skipped=skipped)


@router.get("/jobs/{job_id}", response_model=JobView, name="get_job",
            dependencies=[Depends(require_api_key)], responses={404: {"description": "unknown job"}})
def get_job(request: Request, svc: ServicesDep, job_id: str) -> JobView:
    """A job's status, plates found, output location, model version and timings."""
    try:
        record = svc.jobs.get(job_id)
    except BrokerError as exc:
        raise _unavailable(exc) from exc
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id!r}")
    return JobView(**record.to_dict(), status_url=str(request.url_for("get_job", job_id=job_id)))
