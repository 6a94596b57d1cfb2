"""Per-key limits kept in Redis, shared by every replica of the upload service.

* :meth:`Limits.take` - a token bucket (one Lua script, atomic): ``rate`` tokens per second up to
  ``burst``; answers ``(allowed, retry_after_s)``. Used per key id for every request and per
  client IP for failed authentications.
* :meth:`Limits.admit` / :meth:`Limits.release` - a key's share of the queue: a sorted set of its
  job ids per key (``plateveil:inflight:<key_id>``). Admission is one Lua script (atomic): it drops
  the ids whose job has finished (or was admitted too long ago), then adds the new ones only if they
  fit, so concurrent requests can never push a key past its share. An id admitted moments ago whose
  status record is not written yet still counts. The worker does not need to know: a job's own
  status record says when it stops counting.
* :class:`SyncLimits` - the same two scripts over a blocking client, for the event intake
  (:mod:`producer.intake.intake`, which runs in a thread or in ``plateveil events consume``).

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

# KEYS[1] the key's sorted set; ARGV: now, max_age_s, share, job key prefix, ttl, young_s, job ids...
# Returns {admitted (0/1), jobs counted after the call}. With no job ids it only counts (and tidies).
_ADMIT = """
local now = tonumber(ARGV[1])
local share = tonumber(ARGV[3])
local prefix = ARGV[4]
local young = now - tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local live = 0
for i = 1, #members, 2 do
  local status = redis.call('HGET', prefix .. members[i], 'status')
  if status == 'queued' or status == 'running' or (not status and tonumber(members[i + 1]) >= young) then
    live = live + 1
  else
    redis.call('ZREM', KEYS[1], members[i])
  end
end
local new = #ARGV - 6
if new == 0 then return {1, live} end
if live + new > share then return {0, live} end
for i = 7, #ARGV do redis.call('ZADD', KEYS[1], now, ARGV[i]) end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
return {1, live + new}
"""
# a job admitted this recently whose status record is not written yet (between admission and
# JobStore.create) still counts against its key
YOUNG_S = 60


class QueueShareFull(Exception):
    def __init__(self, key_id: str, share: int, retry_after_s: int) -> None:
        super().__init__(f"key {key_id} has {share} jobs queued or running (its share of the queue)")
        self.share = share
        self.retry_after_s = retry_after_s


def _admit_args(key_id: str, job_ids: list[str], share: int, max_age_s: float, ttl_s: int
                ) -> tuple[list[str], list[Any]]:
    return ([INFLIGHT_PREFIX + key_id],
            [f"{time.time():.6f}", max_age_s, share, JOB_KEY_PREFIX, ttl_s, YOUNG_S, *job_ids])


class Limits:
    def __init__(self, client: aredis.Redis, job_ttl_s: int) -> None:
        self.client = client
        self.job_ttl_s = job_ttl_s
        self._bucket = client.register_script(_TOKEN_BUCKET)
        self._admit = client.register_script(_ADMIT)

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
        keys, args = _admit_args(key_id, job_ids, share, max_age_s, self.job_ttl_s)
        admitted, _ = await self._run("inflight", self._admit(keys=keys, args=args))
        if not int(admitted):
            raise QueueShareFull(key_id, share, retry_after_s)

    async def release(self, key_id: str, job_ids: list[str]) -> None:
        """Jobs that were admitted but not enqueued stop counting."""
        if job_ids:
            await self._run("inflight", self.client.zrem(INFLIGHT_PREFIX + key_id, *job_ids))


class SyncLimits:
    """:class:`Limits`' token bucket and queue share over a blocking Redis client (``decode_responses``)."""

    def __init__(self, client: redis.Redis, job_ttl_s: int) -> None:
        self.client = client
        self.job_ttl_s = job_ttl_s
        self._bucket = client.register_script(_TOKEN_BUCKET)
        self._admit = client.register_script(_ADMIT)

    def _run(self, what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except (redis.RedisError, OSError) as exc:
            raise BrokerError(f"redis {what} failed: {exc}") from exc

    def take(self, bucket: str, rate: float, burst: int, cost: int = 1) -> tuple[bool, float]:
        allowed, wait = self._run("rate limit", self._bucket, keys=[RATE_PREFIX + bucket],
                                  args=[rate, burst, f"{time.time():.6f}", cost])
        return bool(int(allowed)), float(wait)

    def room(self, key_id: str, share: int, max_age_s: float) -> int:
        """How many more jobs ``key_id`` may have queued or running now."""
        keys, args = _admit_args(key_id, [], share, max_age_s, self.job_ttl_s)
        _, live = self._run("inflight", self._admit, keys=keys, args=args)
        return max(0, share - int(live))

    def admit(self, key_id: str, job_ids: list[str], share: int, retry_after_s: int, max_age_s: float) -> int:
        """As :meth:`Limits.admit`; returns the room left after admitting."""
        keys, args = _admit_args(key_id, job_ids, share, max_age_s, self.job_ttl_s)
        admitted, live = self._run("inflight", self._admit, keys=keys, args=args)
        if not int(admitted):
            raise QueueShareFull(key_id, share, retry_after_s)
        return max(0, share - int(live))

    def release(self, key_id: str, job_ids: list[str]) -> None:
        if job_ids:
            self._run("inflight", self.client.zrem, INFLIGHT_PREFIX + key_id, *job_ids)
