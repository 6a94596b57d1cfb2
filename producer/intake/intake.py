"""The one place an object notification record becomes a job: :func:`submit_record`.

Used by SNS and MinIO deliveries (:mod:`producer.intake.routes`) and the SQS consumer
(:mod:`producer.intake.sqs`); ``POST /v1/s3-events`` can call it too
(``await run_in_threadpool(submit_record, svc, record, style)`` per record). For each record:

1. only ``ObjectCreated:*`` events; objects of the output bucket are skipped (no loops); so are
   malformed bucket names and keys (S3 naming rules; checked before any S3 call) and objects
   outside the sender's sources (``PLATEVEIL_SOURCE_ALLOW``: its key id, ``sns`` or ``sqs``),
   the latter with the same reason as a missing object;
2. the key must match one of ``PLATEVEIL_EVENTS_PREFIXES`` and ``PLATEVEIL_EVENTS_SUFFIXES`` when set;
3. ``HEAD`` the object (gone -> skipped; too large / not an image -> skipped);
4. **idempotency**: the object version (bucket, key, ``versionId`` or else ETag; the record's,
   else the HEAD's) is claimed in Redis with ``SET NX EX`` (``plateveil:intake:<sha256>``, for
   ``PLATEVEIL_EVENTS_DEDUPE_TTL_S``); a version claimed before is skipped as a duplicate of its job,
   so SNS/SQS redeliveries, the same event through two paths, or a retried POST make one job;
5. the job is accepted (status ``queued`` + enqueue); if that fails the claim is released so the
   redelivery can make the job.

Storage and broker errors propagate (retryable: the caller answers 5xx / leaves the SQS message).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import cast

from plateveil import keys
from plateveil.errors import BrokerError
from plateveil.imaging import DECODABLE, output_format
from plateveil.schema import ConcealJob, format_for
from producer.intake.records import ObjectRecord
from producer.services import Services
from producer.validation import InputError, check_bucket, check_key, source_allowed

NOT_FOUND = "no such object, or this API key may not read it"

logger = logging.getLogger(__name__)

CLAIM_PREFIX = keys.INTAKE_CLAIM_PREFIX


@dataclass(frozen=True)
class Outcome:
    record: ObjectRecord
    job: ConcealJob | None = None
    skipped: str | None = None  # why no job was made
    duplicate_of: str | None = None  # the job an earlier delivery of this object version made

    @property
    def accepted(self) -> bool:
        return self.job is not None


def claim_key(bucket: str, key: str, version: str) -> str:
    return CLAIM_PREFIX + hashlib.sha256(f"{bucket}\0{key}\0{version}".encode()).hexdigest()


def key_matches(key: str, prefixes: tuple[str, ...], suffixes: tuple[str, ...]) -> bool:
    if prefixes and not any(key.startswith(p) for p in prefixes):
        return False
    return not suffixes or any(key.lower().endswith(s.lower()) for s in suffixes)


def submit_record(svc: Services, record: ObjectRecord, style: str | None = None,
                  metadata: dict[str, str] | None = None, sender: str = "*") -> Outcome:
    """Make (at most) one job for ``record``; see the module docstring. Blocking (S3, Redis)."""
    settings = svc.settings
    if not record.created:
        return Outcome(record, skipped=f"ignored event {record.event_name or '(none)'}")
    if record.bucket == settings.output_bucket:
        return Outcome(record, skipped="object is in the output bucket")
    try:
        check_bucket(record.bucket)
        check_key(record.key)
    except InputError as exc:
        return Outcome(record, skipped=str(exc))
    if not source_allowed(record.bucket, record.key, settings.sources_for(sender)):
        logger.info("%s may not read s3://%s/%s (skipped as not found)", sender, record.bucket, record.key)
        return Outcome(record, skipped=NOT_FOUND)
    if not key_matches(record.key, settings.events_prefixes, settings.events_suffixes):
        return Outcome(record, skipped="key does not match PLATEVEIL_EVENTS_PREFIXES / _SUFFIXES")
    info = svc.store.head(record.bucket, record.key)
    if info is None:
        return Outcome(record, skipped=NOT_FOUND)
    version = record.version_id or record.etag or info.etag
    claim = claim_key(record.bucket, record.key, version)
    client = svc.jobs.client
    if info.size > settings.max_upload_bytes:
        return Outcome(record, skipped=f"larger than {settings.max_upload_bytes} bytes")
    fmt = format_for(info.content_type, record.key)
    if fmt is None or fmt not in DECODABLE:
        return Outcome(record, skipped="not a supported image by content type or extension")
    job = svc.new_job(record.bucket, record.key, output_format(fmt), style or settings.default_style,
                      dict(metadata or {}))
    try:
        claimed = client.set(claim, job.job_id, nx=True, ex=settings.events_dedupe_ttl_s)
        if not claimed:
            earlier = cast(str | None, client.get(claim)) or "?"  # decode_responses=True
            return Outcome(record, skipped=f"duplicate delivery of job {earlier}", duplicate_of=earlier)
    except Exception as exc:  # redis errors: retryable for the caller
        raise BrokerError(f"redis intake claim failed: {exc}") from exc
    try:
        svc.accept(job)
    except BrokerError:
        try:
            client.delete(claim)
        except Exception:  # the claim expires anyway; the redelivery then makes the job
            logger.warning("could not release the intake claim of s3://%s/%s", record.bucket, record.key)
        raise
    logger.info("job %s for s3://%s/%s (%s) from an object notification", job.job_id, record.bucket, record.key,
                version)
    return Outcome(record, job=job)
