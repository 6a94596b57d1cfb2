"""Per-key limits kept in Redis, shared by every replica of the upload service.

* :meth:`Limits.take` - a token bucket (one Lua script, atomic): ``rate`` tokens per second up to
  ``burst``; answers ``(allowed, retry_after_s)``. Used per key id for every request and per
  client IP for failed authentications.
* :meth:`Limits.admit` / :meth:`Limits.release` - a key's share of the queue: a sorted set of its
  job ids per key (``plateveil:inflight:<key_id>``). Admission first drops the ids whose job has
  finished (or expired), then adds the new ones and checks the count, so concurrent requests can
  never push a key past its share (both may be refused in a race; neither is let through).
  The worker does not need to know: a job's own status record says when it stops counting.
* :meth:`Limits.first_delivery` / :meth:`Limits.forget` - S3 event deduplication with
  ``SET NX EX`` on the event intake's claim key (:func:`producer.intake.intake.claim_key`), so an
  object version delivered through ``/v1/s3-events``, SNS, MinIO or SQS makes one job.

Redis errors surface as :class:`~plateveil.errors.BrokerError`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
import redis.asyncio as aredis

from plateveil import keys
from plateveil.errors import BrokerError
from plateveil.jobs import KEY_PREFIX as JOB_KEY_PREFIX

logger = logging.getLogger(__name__)

RATE_PREFIX = keys.RATE_PREFIX
INFLIGHT_PREFIX = keys.INFLIGHT_PREFIX

_TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then tokens = burst; ts = now end
if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate) end
local allowed = 0
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(math.max(now, ts)))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return {allowed, tostring(wait)}
"""


class QueueShareFull(Exception):
    def __init__(self, key_id: str, share: int, retry_after_s: int) -> None:
        super().__init__(f"key {key_id} has {share} jobs queued or running (its share of the queue)")
        self.share = share
        self.retry_after_s = retry_after_s


class Limits:
    def __init__(self, client: aredis.Redis, job_ttl_s: int) -> None:
        self.client = client
        self.job_ttl_s = job_ttl_s
        self._bucket = client.register_script(_TOKEN_BUCKET)

    @classmethod
    def from_url(cls, url: str, timeout_s: float, job_ttl_s: int) -> Limits:
        client = aredis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=timeout_s,
                                       socket_timeout=timeout_s)
        return cls(client, job_ttl_s)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _run(self, what: str, coro: Any) -> Any:
        try:
            return await coro
        except (redis.RedisError, OSError) as exc:
            raise BrokerError(f"redis {what} failed: {exc}") from exc

    async def take(self, bucket: str, rate: float, burst: int, cost: int = 1) -> tuple[bool, float]:
        """Take ``cost`` tokens from ``bucket``; (allowed, seconds until enough tokens)."""
        allowed, wait = await self._run("rate limit", self._bucket(
            keys=[RATE_PREFIX + bucket], args=[rate, burst, f"{time.time():.6f}", cost]))
        return bool(int(allowed)), float(wait)

    async def admit(self, key_id: str, job_ids: list[str], share: int, retry_after_s: int,
                    max_age_s: float = 3600.0) -> None:
        """Count ``job_ids`` against ``key_id``'s share; QueueShareFull when they do not fit.
        Jobs admitted more than ``max_age_s`` ago stop counting whatever their status (a job lost
        by a crashed worker must not hold a slot for the job record's lifetime)."""
        if not job_ids:
            return
        zkey = INFLIGHT_PREFIX + key_id
        await self._run("inflight", self.client.zremrangebyscore(zkey, "-inf", time.time() - max_age_s))
        members = await self._run("inflight", self.client.zrange(zkey, 0, -1))
        done: list[str] = []
        if members:
            pipe = self.client.pipeline(transaction=False)
            for job_id in members:
                pipe.hget(JOB_KEY_PREFIX + job_id, "status")
            statuses = await self._run("inflight", pipe.execute())
            done = [m for m, s in zip(members, statuses, strict=True) if s not in ("queued", "running")]
            if done:
                await self._run("inflight", self.client.zrem(zkey, *done))
        if len(members) - len(done) + len(job_ids) > share:
            raise QueueShareFull(key_id, share, retry_after_s)
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(zkey, {job_id: time.time() for job_id in job_ids})
        pipe.expire(zkey, self.job_ttl_s)
        pipe.zcard(zkey)
        _, _, count = await self._run("inflight", pipe.execute())
        if int(count) > share:
            await self.release(key_id, job_ids)
            raise QueueShareFull(key_id, share, retry_after_s)

    async def release(self, key_id: str, job_ids: list[str]) -> None:
        """Jobs that were admitted but not enqueued stop counting."""
        if job_ids:
            await self._run("inflight", self.client.zrem(INFLIGHT_PREFIX + key_id, *job_ids))

    async def first_delivery(self, claim: str, job_id: str, ttl_s: int) -> bool:
        """True the first time ``claim`` (a Redis key) is set within ``ttl_s`` (SET NX EX, value the job id)."""
        return bool(await self._run("dedup", self.client.set(claim, job_id, nx=True, ex=ttl_s)))

    async def forget(self, claims: list[str]) -> None:
        """Claims that made no job after all (enqueue failed): a retry may make them."""
        if claims:
            await self._run("dedup", self.client.delete(*claims))
