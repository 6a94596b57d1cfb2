"""The job status store: one Redis hash per job (``plateveil:job:<id>``), an index of open jobs,
the dead-letter list and the completion stream.

It also carries the upload hand-off: the upload service, having stored a small original in S3, may leave
a copy of its bytes beside the job record (``plateveil:upload:<id>``, a short TTL, written in the same
round trip as the record); the worker takes it (read and delete at once) instead of reading the original
back from S3. The S3 original stays the durable copy: a retried or redelivered job, an expired or
missing hand-off, all read S3 as before.

The producer writes ``queued`` *before* it enqueues (so a fast worker's ``running`` is never
overwritten) and adds the job to the open-jobs index (``plateveil:jobs:open``, a sorted set by
acceptance time) that the reconciler walks. The worker's state changes are Lua scripts, so each is
atomic and none is a read-modify-write race:

* :meth:`JobStore.mark_running` recreates a record that vanished (TTL, eviction, a Redis restart)
  from the job payload, counts the delivery, and refuses a job that already finished (a duplicate
  delivery is then skipped, not redone);
* :meth:`JobStore.finish` is the claim: only the first ``done``/``failed`` of a job is recorded,
  leaves the open index and publishes the completion event (``XADD ... MAXLEN ~ n``); a second
  finish of the same job changes nothing and publishes nothing. A ``failed`` job is also written
  to the dead-letter list (``plateveil:dlq``: job id -> reason, time and the payload to replay).

Redis errors surface as :class:`~plateveil.errors.BrokerError` (retryable).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from plateveil import keys
from plateveil.errors import BrokerError
from plateveil.redisconn import redis_from_url
from plateveil.schema import CompletionEvent, ConcealJob, JobRecord, JobStatus, iso_ms, parse_iso, utc_now
from plateveil.storage.base import ObjectInfo, StoredObject

logger = logging.getLogger(__name__)

KEY_PREFIX = keys.JOB_PREFIX
UPLOAD_PREFIX = keys.UPLOAD_PREFIX
OPEN_INDEX = keys.OPEN_INDEX
"""Sorted set: job id -> acceptance time (epoch s) of every job not yet ``done``/``failed``."""
DLQ_KEY = keys.DLQ
"""Hash: job id -> JSON dead-letter entry (reason, failed_at, attempts, job payload)."""
DLQ_INDEX = keys.DLQ_INDEX
"""Sorted set: job id -> time (epoch s) it was dead-lettered."""

# Fields a worker may write beside the payload's; cleared when a dead-lettered job is replayed.
_PROGRESS_FIELDS = ("started_at", "completed_at", "model", "plates", "timings_ms", "error", "attempts",
                    "retried", "requeues", "retrying_since")

_MARK_RUNNING = """
-- KEYS[1] record, KEYS[2] open index; ARGV[1] ttl, ARGV[2] started_at, ARGV[3] accepted epoch,
-- ARGV[4] job id, ARGV[5..] the payload's fields (recreate a vanished or partial record)
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'done' or status == 'failed' then return {-1, 0, 0} end
local recreated = 0
if redis.call('HEXISTS', KEYS[1], 'source_key') == 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 5))
  redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[4])
  recreated = 1
end
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[2])
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
local settled = tonumber(redis.call('HGET', KEYS[1], 'retried') or '0') +
                tonumber(redis.call('HGET', KEYS[1], 'requeues') or '0')
redis.call('EXPIRE', KEYS[1], ARGV[1])
return {attempts, settled, recreated}
"""

_FINISH = """
-- KEYS[1] record, KEYS[2] open index, KEYS[3] event stream, KEYS[4] dlq hash, KEYS[5] dlq index
-- ARGV[1] ttl, ARGV[2] stream maxlen, ARGV[3] job id, ARGV[4] dlq entry ('' = none), ARGV[5] now,
-- ARGV[6] n = number of record fields, ARGV[7 .. 6+2n] record fields, then the event's fields
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'done' or status == 'failed' then return 0 end
local n = tonumber(ARGV[6])
redis.call('HSET', KEYS[1], unpack(ARGV, 7, 6 + 2 * n))
redis.call('HDEL', KEYS[1], 'retrying_since')
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 7 + 2 * n))
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[4], ARGV[3], ARGV[4])
  redis.call('ZADD', KEYS[5], ARGV[5], ARGV[3])
end
return 1
"""


def _flat(mapping: Mapping[str, str]) -> list[str]:
    out: list[str] = []
    for key, value in mapping.items():
        out += [key, value]
    return out


def accepted_epoch(accepted_at: str) -> float:
    try:
        return parse_iso(accepted_at).timestamp()
    except ValueError:
        return time.time()


@dataclass(frozen=True)
class Started:
    """What :meth:`JobStore.mark_running` found: ``already_finished`` (a duplicate delivery),
    the delivery count, how many earlier deliveries ended in a scheduled retry or a requeue (so
    ``unfinished`` is how many crashed or stalled), and whether the record had to be recreated."""

    already_finished: bool
    attempts: int = 0
    settled: int = 0
    recreated: bool = False

    @property
    def unfinished(self) -> int:
        """Deliveries of this job that started and never ended, counting this one."""
        return self.attempts - self.settled


@dataclass(frozen=True)
class DeadLetter:
    job_id: str
    reason: str
    failed_at: str
    attempts: int
    job: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"job_id": self.job_id, "reason": self.reason, "failed_at": self.failed_at,
                           "attempts": self.attempts, "job": self.job}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DeadLetter:
        d = json.loads(text)
        return cls(job_id=str(d["job_id"]), reason=str(d["reason"]), failed_at=str(d["failed_at"]),
                   attempts=int(d.get("attempts") or 0), job=dict(d.get("job") or {}))


class JobStore:
    def __init__(self, client: redis.Redis, ttl_s: int = 7 * 24 * 3600, event_stream: str = keys.EVENT_STREAM,
                 event_maxlen: int = 100_000, raw_client: redis.Redis | None = None) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self.event_stream = event_stream
        self.event_maxlen = event_maxlen
        self._raw = raw_client  # the same server answering bytes (photo data is not text); needed to take uploads
        self._mark_running = client.register_script(_MARK_RUNNING)
        self._finish = client.register_script(_FINISH)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> JobStore:
        options = {"socket_connect_timeout": 3, "socket_timeout": 5, "health_check_interval": 30}
        client = redis_from_url(url, decode_responses=True, **options)
        return cls(client, raw_client=redis_from_url(url, decode_responses=False, **options), **kwargs)

    @staticmethod
    def key(job_id: str) -> str:
        return KEY_PREFIX + job_id

    def _run(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except redis.RedisError as exc:
            raise BrokerError(f"redis {what} failed: {exc}") from exc

    def ping(self) -> None:
        self._run("ping", self.client.ping)

    def create(self, record: JobRecord, upload: StoredObject | None = None, upload_ttl_s: int = 60) -> None:
        """Write the record and add it to the open-jobs index; with ``upload`` (the original as stored),
        also leave its bytes for the worker."""
        pipe = self.client.pipeline()
        pipe.hset(self.key(record.job_id), mapping=cast(Mapping[Any, Any], record.to_hash()))
        pipe.expire(self.key(record.job_id), self.ttl_s)
        if upload is not None:
            info = upload.info
            pipe.hset(UPLOAD_PREFIX + record.job_id, mapping={
                "data": upload.data, "bucket": info.bucket, "key": info.key, "etag": info.etag,
                "content_type": info.content_type})
            pipe.expire(UPLOAD_PREFIX + record.job_id, upload_ttl_s)
        pipe.zadd(OPEN_INDEX, {record.job_id: accepted_epoch(record.accepted_at)})
        self._run("create", pipe.execute)

    def take_upload(self, job_id: str, bucket: str, key: str) -> StoredObject | None:
        """The original's bytes left by the upload service for this job (removed as they are read), or None:
        none left, expired, for another object, Redis failing, or a store made without a bytes client (the
        caller then reads S3)."""
        if self._raw is None:
            return None
        name = UPLOAD_PREFIX + job_id
        try:
            pipe = self._raw.pipeline()
            pipe.hgetall(name)
            pipe.delete(name)
            found = pipe.execute()[0]
        except redis.RedisError:
            return None
        if not found:
            return None
        h = {k.decode(): v for k, v in found.items()}
        if h.get("bucket", b"").decode() != bucket or h.get("key", b"").decode() != key or "data" not in h:
            return None
        data = bytes(h["data"])
        return StoredObject(ObjectInfo(bucket, key, len(data), h.get("content_type", b"").decode(),
                                       h.get("etag", b"").decode()), data)

    def get(self, job_id: str) -> JobRecord | None:
        """The record, or None when there is none (never created, expired, evicted, lost) or only a
        fragment of one is left (it cannot be shown; the worker recreates it from the payload)."""
        h = self._run("get", self.client.hgetall, self.key(job_id))
        if not h:
            return None
        try:
            return JobRecord.from_hash(h)
        except (KeyError, ValueError, TypeError) as exc:
            logger.warning("job %s: incomplete status record (%s: %s), treated as missing", job_id,
                           type(exc).__name__, exc)
            return None

    def open_jobs(self, older_than: float | None = None, limit: int = 10_000) -> list[tuple[str, float]]:
        """Open jobs (not finished), oldest first, accepted before ``older_than`` (epoch s)."""
        top = "+inf" if older_than is None else older_than
        rows = self._run("zrangebyscore", self.client.zrangebyscore, OPEN_INDEX, "-inf", top, start=0, num=limit,
                         withscores=True)
        return [(str(job_id), float(score)) for job_id, score in rows]

    def open_count(self) -> int:
        return int(self._run("zcard", self.client.zcard, OPEN_INDEX))

    def forget_open(self, job_id: str) -> None:
        self._run("zrem", self.client.zrem, OPEN_INDEX, job_id)

    def mark_running(self, job: ConcealJob) -> Started:
        """Status ``running`` and one more delivery; recreates the record from ``job`` when it is
        gone. A job already ``done``/``failed`` is left alone (``already_finished``)."""
        base = JobRecord.queued(job).to_hash()
        result = self._run("mark-running", self._mark_running,
                           keys=[self.key(job.job_id), OPEN_INDEX],
                           args=[self.ttl_s, iso_ms(utc_now()), accepted_epoch(job.accepted_at), job.job_id,
                                 *_flat(base)])
        attempts, settled, recreated = (int(v) for v in result)
        if attempts < 0:
            return Started(already_finished=True)
        if recreated:
            logger.warning("job %s: status record was missing; recreated from the job payload", job.job_id)
        return Started(False, attempts, settled, bool(recreated))

    def mark_retrying(self, job_id: str, reason: str) -> float:
        """Back to ``queued`` while a retry waits (the reason is kept in ``error``); returns when
        this run of retries began (epoch s), for the retry window."""
        pipe = self.client.pipeline()
        key = self.key(job_id)
        pipe.hset(key, mapping={"status": JobStatus.QUEUED.value, "error": reason})
        pipe.hincrby(key, "retried", 1)
        pipe.hsetnx(key, "retrying_since", f"{time.time():.3f}")
        pipe.hget(key, "retrying_since")
        pipe.expire(key, self.ttl_s)
        result = self._run("mark-retrying", pipe.execute)
        return float(result[3] or time.time())

    def mark_requeued(self, job_id: str, reason: str) -> int:
        """Back to ``queued`` after the reconciler sent a new message; returns the requeue count."""
        pipe = self.client.pipeline()
        key = self.key(job_id)
        pipe.hset(key, mapping={"status": JobStatus.QUEUED.value, "error": reason})
        pipe.hincrby(key, "requeues", 1)
        pipe.expire(key, self.ttl_s)
        return int(self._run("mark-requeued", pipe.execute)[1])

    def requeues(self, job_id: str) -> int:
        return int(self._run("hget", self.client.hget, self.key(job_id), "requeues") or 0)

    def finish(self, job_id: str, status: JobStatus, *, model: str | None = None,
               plates: list[dict[str, Any]] | None = None, timings_ms: dict[str, float] | None = None,
               error: str | None = None, completed_at: str | None = None, job: ConcealJob | None = None,
               dead_letter: bool = True) -> JobRecord | None:
        """:meth:`end` without the claim flag."""
        return self.end(job_id, status, model=model, plates=plates, timings_ms=timings_ms, error=error,
                        completed_at=completed_at, job=job, dead_letter=dead_letter)[0]

    def end(self, job_id: str, status: JobStatus, *, model: str | None = None,
            plates: list[dict[str, Any]] | None = None, timings_ms: dict[str, float] | None = None,
            error: str | None = None, completed_at: str | None = None, job: ConcealJob | None = None,
            dead_letter: bool = True) -> tuple[JobRecord | None, bool]:
        """Record the end of a job once: the first ``done``/``failed`` wins, leaves the open index,
        publishes the completion event and (``failed`` with ``dead_letter``) writes the dead-letter
        entry, all in one atomic step. A job already finished is not touched and no event is
        published again. Returns the final record and whether this call was the one that ended it.
        When it was, the record is the one it wrote and announced (the completion event is made from
        it; the caller hands it on, e.g. to the webhook, without reading it back); when it was not (a
        duplicate), the record as the first end left it. None when there is no record and no ``job``
        to rebuild it from."""
        fields = {"status": status.value, "completed_at": completed_at or iso_ms(utc_now()),
                  "plates": json.dumps(plates or [], sort_keys=True),
                  "timings_ms": json.dumps(timings_ms or {}, sort_keys=True), "error": error or ""}
        if model:
            fields["model"] = model
        current = self.get(job_id)
        if current is None and job is None:
            logger.warning("job %s: no status record and no payload: end (%s) not recorded", job_id, status.value)
            return None, False
        base = current.to_hash() if current is not None else JobRecord.queued(cast(ConcealJob, job)).to_hash()
        merged = base | fields
        record = JobRecord.from_hash(merged)
        letter = ""
        if status is JobStatus.FAILED and dead_letter:
            payload = job.to_dict() if job is not None else record_payload(record)
            letter = DeadLetter(job_id, error or "", fields["completed_at"], record.attempts, payload).to_json()
        # a vanished record is written whole (payload fields + the end), so it is never a fragment
        record_fields = merged if current is None else fields
        event = CompletionEvent.of(record).to_fields()
        claimed = self._run("finish", self._finish,
                            keys=[self.key(job_id), OPEN_INDEX, self.event_stream, DLQ_KEY, DLQ_INDEX],
                            args=[self.ttl_s, self.event_maxlen, job_id, letter, f"{time.time():.3f}",
                                  len(record_fields), *_flat(record_fields), *_flat(event)])
        if claimed:
            return record, True
        logger.info("job %s already finished: this %s is a duplicate, not recorded again", job_id, status.value)
        return self.get(job_id), False

    def publish(self, event: CompletionEvent) -> str:
        return str(self._run("xadd", self.client.xadd, self.event_stream, event.to_fields(),
                             maxlen=self.event_maxlen, approximate=True))

    def read_events(self, last_id: str = "0", count: int = 100) -> list[tuple[str, CompletionEvent]]:
        entries = self._run("xrange", self.client.xrange, self.event_stream, min=last_id, count=count)
        return [(entry_id, CompletionEvent.from_fields(fields)) for entry_id, fields in entries]

    # -- dead-letter list --------------------------------------------------------------------------

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Dead-lettered jobs, newest first."""
        ids = self._run("zrevrange", self.client.zrevrange, DLQ_INDEX, 0, max(limit, 1) - 1)
        if not ids:
            return []
        texts = self._run("hmget", self.client.hmget, DLQ_KEY, ids)
        return [DeadLetter.from_json(t) for t in texts if t]

    def dead_letter(self, job_id: str) -> DeadLetter | None:
        text = self._run("hget", self.client.hget, DLQ_KEY, job_id)
        return DeadLetter.from_json(text) if text else None

    def dead_letter_count(self) -> int:
        return int(self._run("zcard", self.client.zcard, DLQ_INDEX))

    def reopen(self, job: ConcealJob) -> None:
        """Make a dead-lettered (or any finished) job ``queued`` again from its payload, with fresh
        counters, back in the open index and out of the dead-letter list. The caller enqueues it."""
        key = self.key(job.job_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(key, *_PROGRESS_FIELDS)
        pipe.hset(key, mapping=cast(Mapping[Any, Any], JobRecord.queued(job).to_hash()))
        pipe.expire(key, self.ttl_s)
        pipe.zadd(OPEN_INDEX, {job.job_id: accepted_epoch(job.accepted_at)})
        pipe.hdel(DLQ_KEY, job.job_id)
        pipe.zrem(DLQ_INDEX, job.job_id)
        self._run("reopen", pipe.execute)


def record_payload(record: JobRecord) -> dict[str, Any]:
    """The task payload a record was made from (to requeue or replay it)."""
    return job_from_record(record).to_dict()


def job_from_record(record: JobRecord) -> ConcealJob:
    return ConcealJob(job_id=record.job_id, source_bucket=record.source_bucket, source_key=record.source_key,
                      output_bucket=record.output_bucket, output_key=record.output_key, style=record.style,
                      accepted_at=record.accepted_at, metadata=dict(record.metadata), key_id=record.key_id)
