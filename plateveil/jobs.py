"""The job status store: one Redis hash per job (``plateveil:job:<id>``) plus the completion stream.

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

KEY_PREFIX = "plateveil:job:"


class JobStore:
    def __init__(self, client: redis.Redis, ttl_s: int = 7 * 24 * 3600, event_stream: str = "plateveil:events",
                 event_maxlen: int = 100_000) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self.event_stream = event_stream
        self.event_maxlen = event_maxlen

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> JobStore:
        client = redis_from_url(url, decode_responses=True, socket_connect_timeout=3, socket_timeout=5,
                                      health_check_interval=30)
        return cls(client, **kwargs)

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

    def create(self, record: JobRecord) -> None:
        pipe = self.client.pipeline()
        pipe.hset(self.key(record.job_id), mapping=cast(Mapping[Any, Any], record.to_hash()))
        pipe.expire(self.key(record.job_id), self.ttl_s)
        self._run("create", pipe.execute)

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
