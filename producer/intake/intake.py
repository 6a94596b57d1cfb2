"""The one place object notifications become jobs: :func:`submit_batch`.

Every intake path calls it with the records of one delivery: ``POST /v1/s3-events`` and
``POST /v1/events/minio`` (the calling API key), ``POST /v1/events/sns`` (``PLATEVEIL_SNS_KEY_ID``)
and ``plateveil events consume --sqs`` (``PLATEVEIL_SQS_KEY_ID``). That key id is the *sender*: its
sources apply, its rate and queue share are charged, and the jobs belong to it (``key_id``).

1. **record cap**: more than ``PLATEVEIL_MAX_EVENT_RECORDS`` records -> :class:`TooManyRecords`,
   before any S3 or Redis call (the routes answer 413; the SQS consumer leaves the message);
2. per record, without any S3 call: only ``ObjectCreated:*``; not the output bucket (no loops);
   bucket and key names valid (S3 naming rules); inside the sender's sources
   (``PLATEVEIL_SOURCE_ALLOW``; outside reads as "not found"); ``PLATEVEIL_EVENTS_PREFIXES`` /
   ``_SUFFIXES``;
3. **short circuit**: when the sender's share of the queue is used up, the batch stops here
   (:class:`Refusal`), before the HEAD: no S3 call is made for a job that could not be queued;
4. ``HEAD`` the object: gone -> "not found"; an upload of another key (originals bucket, uploads
   prefix, ``api-key-id`` metadata) -> "not found" (:mod:`producer.ownership`); too large or not
   an image -> skipped;
5. **duplicates** are keyed by what S3 says about the object, never by what the sender claims:
   (bucket, key, the HEAD's ``VersionId``, else the HEAD's ETag) is claimed in Redis with
   ``SET NX EX`` (``plateveil:intake:<sha256>``, ``PLATEVEIL_EVENTS_DEDUPE_TTL_S``). A version
   claimed before is a duplicate and costs neither a share slot nor a rate token, so a retried
   delivery, the same event through two paths, or a sender inventing ``versionId`` values make
   one job per object version;
6. the job is admitted to the sender's share (full -> the batch stops, the claim is released), a
   token is taken from the sender's rate bucket (the first job of an HTTP request is paid by the
   request's own token, taken by the guard; empty -> the batch stops), then accepted (status
   ``queued`` + enqueue). A broker error releases the slot and the claim and propagates.

So a batch makes at most one HEAD per distinct object, at most the cap, and stops HEADing as soon as
the share is used (the same object named twice in one delivery is answered from the first).
Records after a stop are not processed and the caller tells the sender to retry after
``Retry-After``; jobs made before the stop stay, and the retry finds them as duplicates.
Storage and broker errors propagate (retryable: the caller answers 503 / leaves the SQS message).
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from typing import cast

from plateveil import keys
from plateveil.errors import BrokerError
from plateveil.imaging import DECODABLE, output_format
from plateveil.schema import ConcealJob, format_for
from producer.intake.records import ObjectRecord, TooManyRecords
from producer.limits import QueueShareFull, SyncLimits
from producer.ownership import may_read_object
from producer.services import Services
from producer.validation import InputError, check_bucket, check_key, source_allowed

NOT_FOUND = "no such object, or this API key may not read it"

logger = logging.getLogger(__name__)

CLAIM_PREFIX = keys.INTAKE_CLAIM_PREFIX
RATE_BUCKET = "key:"  # the guard's per-key bucket (producer.guard): one rate per key, requests and jobs


@dataclass(frozen=True)
class Outcome:
    record: ObjectRecord
    job: ConcealJob | None = None
    skipped: str | None = None  # why no job was made
    duplicate_of: str | None = None  # the job an earlier delivery of this object version made ("" if not the sender's)

    @property
    def accepted(self) -> bool:
        return self.job is not None

    @property
    def duplicate(self) -> bool:
        return self.duplicate_of is not None


@dataclass(frozen=True)
class Refusal:
    """Why a batch stopped before its end: the sender's queue share or rate is used up."""

    reason: str  # "share" or "rate"
    detail: str
    retry_after_s: int


@dataclass
class BatchResult:
    outcomes: list[Outcome] = field(default_factory=list)
    refused: Refusal | None = None
    not_processed: list[ObjectRecord] = field(default_factory=list)
    heads: int = 0  # S3 HEADs this batch made

    @property
    def jobs(self) -> list[ConcealJob]:
        return [o.job for o in self.outcomes if o.job is not None]


def claim_key(bucket: str, key: str, version: str) -> str:
    return CLAIM_PREFIX + hashlib.sha256(f"{bucket}\0{key}\0{version}".encode()).hexdigest()


def key_matches(key: str, prefixes: tuple[str, ...], suffixes: tuple[str, ...]) -> bool:
    if prefixes and not any(key.startswith(p) for p in prefixes):
        return False
    return not suffixes or any(key.lower().endswith(s.lower()) for s in suffixes)


def precheck(svc: Services, record: ObjectRecord, sender: str) -> str | None:
    """Why ``record`` makes no job, decided without any S3 call; None when it may."""
    settings = svc.settings
    if not record.created:
        return f"ignored event {record.event_name[:60] or '(none)'}"
    if record.bucket == settings.output_bucket:
        return "object is in the output bucket"
    try:
        check_bucket(record.bucket)
        check_key(record.key)
    except InputError as exc:
        return str(exc)
    if not source_allowed(record.bucket, record.key, settings.sources_for(sender)):
        logger.info("%s may not read s3://%s/%s (skipped as not found)", sender, record.bucket, record.key)
        return NOT_FOUND
    if not key_matches(record.key, settings.events_prefixes, settings.events_suffixes):
        return "key does not match PLATEVEIL_EVENTS_PREFIXES / _SUFFIXES"
    return None


class _Batch:
    """The state of one batch: the sender's room in its share and the rate tokens already paid."""

    def __init__(self, svc: Services, sender: str, paid: int) -> None:
        self.svc = svc
        self.sender = sender
        self.paid = paid
        self.limits = SyncLimits(svc.jobs.client, svc.settings.job_ttl_s)
        self.room: int | None = None  # unknown until the first record that needs a HEAD
        self.result = BatchResult()
        self.seen: dict[tuple[str, str], Outcome] = {}  # (bucket, key) -> its outcome in this batch

    def share_refusal(self) -> Refusal:
        s = self.svc.settings
        return Refusal("share", f"this key already has {s.key_max_inflight} jobs queued or running (its share "
                       "of the queue); retry when some have finished", s.queue_retry_after_s)

    def has_room(self) -> bool:
        s = self.svc.settings
        if self.room is None:
            self.room = self.limits.room(self.sender, s.key_max_inflight, s.key_inflight_max_age_s)
        return self.room > 0

    def submit(self, record: ObjectRecord, style: str | None) -> Outcome | Refusal:
        reason = precheck(self.svc, record, self.sender)
        if reason is not None:
            return Outcome(record, skipped=reason)
        earlier = self.seen.get((record.bucket, record.key))
        if earlier is not None:  # the same object twice in one delivery: one HEAD, one answer
            if earlier.job is not None:
                return Outcome(record, skipped=f"duplicate delivery of job {earlier.job.job_id}",
                               duplicate_of=earlier.job.job_id)
            return Outcome(record, skipped=earlier.skipped, duplicate_of=earlier.duplicate_of)
        if not self.has_room():
            return self.share_refusal()
        got = self._submit_new(record, style)
        if isinstance(got, Outcome):
            self.seen[(record.bucket, record.key)] = got
        return got

    def _submit_new(self, record: ObjectRecord, style: str | None) -> Outcome | Refusal:
        svc, settings, sender = self.svc, self.svc.settings, self.sender
        self.result.heads += 1
        info = svc.store.head(record.bucket, record.key)
        if info is None or not may_read_object(settings, sender, info):
            return Outcome(record, skipped=NOT_FOUND)
        if info.size > settings.max_upload_bytes:
            return Outcome(record, skipped=f"larger than {settings.max_upload_bytes} bytes")
        fmt = format_for(info.content_type, record.key)
        if fmt is None or fmt not in DECODABLE:
            return Outcome(record, skipped="not a supported image by content type or extension")
        version = info.version_id or info.etag or f"size-{info.size}"  # S3's word, not the sender's
        claim = claim_key(record.bucket, record.key, version)
        job = svc.new_job(record.bucket, record.key, output_format(fmt), style or settings.default_style, {},
                          key_id=sender)
        client = svc.jobs.client
        try:
            if not client.set(claim, f"{job.job_id} {sender}", nx=True, ex=settings.events_dedupe_ttl_s):
                earlier = cast(str | None, client.get(claim)) or ""  # decode_responses=True
                earlier_job, _, earlier_sender = earlier.partition(" ")
                mine = earlier_sender == sender
                return Outcome(record, skipped=f"duplicate delivery of job {earlier_job}" if mine else
                               "duplicate delivery: this object version already has a job", duplicate_of=
                               earlier_job if mine else "")
        except BrokerError:
            raise
        except Exception as exc:  # redis errors: retryable for the caller
            raise BrokerError(f"redis intake claim failed: {exc}") from exc
        try:
            self.room = self.limits.admit(sender, [job.job_id], settings.key_max_inflight,
                                          settings.queue_retry_after_s, settings.key_inflight_max_age_s)
        except QueueShareFull:
            self._forget(claim)
            self.room = 0
            return self.share_refusal()
        except BrokerError:
            self._forget(claim)
            raise
        if self.paid > 0:
            self.paid -= 1
        else:
            ok, wait = self._take_token(claim, job)
            if not ok:
                return Refusal("rate", f"rate limit of this key ({settings.rate_per_s:g}/s, burst "
                               f"{settings.rate_burst}) exceeded", max(1, math.ceil(wait)))
        try:
            svc.accept(job, sender)
        except BrokerError:
            self._release(claim, job)
            raise
        logger.info("job %s for s3://%s/%s (%s) from an object notification of %s", job.job_id, record.bucket,
                    record.key, version, sender)
        return Outcome(record, job=job)

    def _take_token(self, claim: str, job: ConcealJob) -> tuple[bool, float]:
        s = self.svc.settings
        try:
            ok, wait = self.limits.take(RATE_BUCKET + self.sender, s.rate_per_s, s.rate_burst)
        except BrokerError:
            self._release(claim, job)
            raise
        if not ok:
            self._release(claim, job)
        return ok, wait

    def _release(self, claim: str, job: ConcealJob) -> None:
        try:
            self.limits.release(self.sender, [job.job_id])
        except BrokerError:
            logger.warning("could not release the queue slot of job %s (it expires)", job.job_id)
        self._forget(claim)

    def _forget(self, claim: str) -> None:
        try:
            self.svc.jobs.client.delete(claim)
        except Exception:  # the claim expires anyway; until then the object version reads as a duplicate
            logger.warning("could not release the intake claim %s", claim)


def submit_batch(svc: Services, records: list[ObjectRecord], sender: str, style: str | None = None,
                 paid: int = 0) -> BatchResult:
    """Make at most one job per record of one delivery, in order (see the module docstring).
    ``sender``: the key id whose sources, rate and share apply and who owns the jobs; ``paid``:
    rate tokens the delivery already paid (1 for an HTTP request: the guard took it). Blocking."""
    if len(records) > svc.settings.max_event_records:
        raise TooManyRecords(len(records), svc.settings.max_event_records)
    batch = _Batch(svc, sender, paid)
    for n, record in enumerate(records):
        got = batch.submit(record, style)
        if isinstance(got, Refusal):
            batch.result.refused = got
            batch.result.not_processed = list(records[n:])
            logger.warning("intake of %s stopped after %d of %d records: %s", sender, n, len(records), got.detail)
            break
        batch.result.outcomes.append(got)
    return batch.result


def submit_record(svc: Services, record: ObjectRecord, sender: str, style: str | None = None) -> Outcome | Refusal:
    """One record through :func:`submit_batch`: its outcome, or the refusal that stopped it."""
    result = submit_batch(svc, [record], sender, style)
    return result.refused if result.refused is not None else result.outcomes[0]
