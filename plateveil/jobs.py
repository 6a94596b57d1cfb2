"""The job status store: one Redis hash per job (``plateveil:job:<id>``) plus the completion stream.

It also carries the upload hand-off: the upload service, having stored a small original in S3, may leave
a copy of its bytes beside the job record (``plateveil:upload:<id>``, a short TTL, written in the same
round trip as the record); the worker takes it (read and delete at once) instead of reading the original
back from S3. The S3 original stays the durable copy: a retried or redelivered job, an expired or
missing hand-off, all read S3 as before.

The producer writes ``queued`` *before* it enqueues (so a fast worker's ``running`` is never
overwritten); the worker writes ``running`` / ``done`` / ``failed`` with partial ``HSET``s, so no
read-modify-write races. Finished jobs go to the event stream (``XADD ... MAXLEN ~ n``).
Redis errors surface as :class:`~plateveil.errors.BrokerError` (retryable).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

import redis

from plateveil.errors import BrokerError
from plateveil.redisconn import redis_from_url
from plateveil.schema import CompletionEvent, JobRecord, JobStatus, iso_ms, utc_now
from plateveil.storage.base import ObjectInfo, StoredObject

KEY_PREFIX = "plateveil:job:"
UPLOAD_PREFIX = "plateveil:upload:"


class JobStore:
    def __init__(self, client: redis.Redis, ttl_s: int = 7 * 24 * 3600, event_stream: str = "plateveil:events",
                 event_maxlen: int = 100_000, raw_client: redis.Redis | None = None) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self.event_stream = event_stream
        self.event_maxlen = event_maxlen
        self._raw = raw_client  # the same server answering bytes (photo data is not text); needed to take uploads

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
        """Write the record; with ``upload`` (the original as stored), also leave its bytes for the worker."""
        pipe = self.client.pipeline()
        pipe.hset(self.key(record.job_id), mapping=cast(Mapping[Any, Any], record.to_hash()))
        pipe.expire(self.key(record.job_id), self.ttl_s)
        if upload is not None:
            info = upload.info
            pipe.hset(UPLOAD_PREFIX + record.job_id, mapping={
                "data": upload.data, "bucket": info.bucket, "key": info.key, "etag": info.etag,
                "content_type": info.content_type})
            pipe.expire(UPLOAD_PREFIX + record.job_id, upload_ttl_s)
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
        h = self._run("get", self.client.hgetall, self.key(job_id))
        return JobRecord.from_hash(h) if h else None

    def _update(self, job_id: str, fields: dict[str, str], incr_attempts: bool = False) -> int:
        pipe = self.client.pipeline()
        pipe.hset(self.key(job_id), mapping=cast(Mapping[Any, Any], fields))
        if incr_attempts:
            pipe.hincrby(self.key(job_id), "attempts", 1)
        pipe.expire(self.key(job_id), self.ttl_s)
        result = self._run("update", pipe.execute)
        return int(result[1]) if incr_attempts else 0

    def mark_running(self, job_id: str) -> int:
        """Status ``running``; returns how many times the job has been started (deliveries)."""
        return self._update(job_id, {"status": JobStatus.RUNNING.value, "started_at": iso_ms(utc_now())},
                            incr_attempts=True)

    def mark_retrying(self, job_id: str, reason: str) -> None:
        """Back to ``queued`` while a retry waits (the reason is kept in ``error``)."""
        self._update(job_id, {"status": JobStatus.QUEUED.value, "error": reason})

    def finish(self, job_id: str, status: JobStatus, *, model: str | None = None,
               plates: list[dict[str, Any]] | None = None, timings_ms: dict[str, float] | None = None,
               error: str | None = None, completed_at: str | None = None) -> JobRecord | None:
        """Record the end of a job and publish its completion event; returns the final record."""
        fields = {"status": status.value, "completed_at": completed_at or iso_ms(utc_now()),
                  "plates": json.dumps(plates or [], sort_keys=True),
                  "timings_ms": json.dumps(timings_ms or {}, sort_keys=True), "error": error or ""}
        if model:
            fields["model"] = model
        self._update(job_id, fields)
        record = self.get(job_id)
        if record is not None:
            self.publish(CompletionEvent.of(record))
        return record

    def publish(self, event: CompletionEvent) -> str:
        return str(self._run("xadd", self.client.xadd, self.event_stream, event.to_fields(),
                             maxlen=self.event_maxlen, approximate=True))

    def read_events(self, last_id: str = "0", count: int = 100) -> list[tuple[str, CompletionEvent]]:
        entries = self._run("xrange", self.client.xrange, self.event_stream, min=last_id, count=count)
        return [(entry_id, CompletionEvent.from_fields(fields)) for entry_id, fields in entries]
