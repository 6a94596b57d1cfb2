"""The review queue's index of finished jobs, in Redis, fed from the completion stream.

Why the stream: every finished job is already announced on ``plateveil:events`` by the worker
(``JobStore.finish``), in order, with a cursor (the entry id). The index reads it incrementally
(``sync``) whenever the queue is looked at, so the worker and the job store need no change and a
queue view costs Redis reads only, never an S3 bucket listing (which grows without bound and cannot
be filtered). The per-job summary (plate count, lowest plate score, model, style) comes from the job
record, or from the sidecar when the record has expired. The stream is capped
(``PLATEVEIL_EVENT_STREAM_MAXLEN``): jobs that fall off it before any reviewer opens the queue are not
indexed (they stay reachable by id: ``/review/jobs/<id>``, and a flag indexes its job).

Keys (prefix ``plateveil:review:``): ``jobs`` (sorted set, job id -> completion time, ms),
``job:<id>`` (hash: the summary plus review state), ``flagged`` (sorted set, id -> last flag time),
``flags:<id>`` (list of the last flags), ``models`` (set of model tags), ``cursor`` (last stream id read).
Entries older than ``PLATEVEIL_REVIEW_INDEX_DAYS`` are dropped by ``sync``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from plateveil import keys
from plateveil.errors import BrokerError
from plateveil.jobs import JobStore
from plateveil.schema import JobRecord, JobStatus, iso_ms, parse_iso, utc_now

logger = logging.getLogger(__name__)

PREFIX = keys.REVIEW_PREFIX
MAX_FLAGS_KEPT = 20
SYNC_BATCH = 500
SCAN_LIMIT = 2000   # newest jobs a queue view looks at (plus every flagged one)


@dataclass(frozen=True)
class QueueFilter:
    flagged: bool = False
    no_plate: bool = False
    low_score: bool = False
    model: str = ""
    date: str = ""          # YYYY-MM-DD (UTC day of completion)
    state: str = "open"     # open (not reviewed yet) | reviewed | all

    def matches(self, entry: dict[str, str], low: float) -> bool:
        if self.flagged and not entry.get("flagged_at"):
            return False
        if self.no_plate and int(entry.get("plate_count") or 0) != 0:
            return False
        if self.low_score and not (entry.get("min_score") not in (None, "") and float(entry["min_score"]) < low):
            return False
        if self.model and entry.get("model") != self.model:
            return False
        if self.date and not str(entry.get("completed_at", "")).startswith(self.date):
            return False
        reviewed = bool(entry.get("reviewed_at"))
        if self.state == "open" and reviewed and not entry.get("flagged_at"):
            return False
        return not (self.state == "reviewed" and not reviewed)


def _ms(iso: str) -> int:
    try:
        return int(parse_iso(iso).timestamp() * 1000)
    except ValueError:
        return int(time.time() * 1000)


def _next_id(stream_id: str) -> str:
    ms, _, seq = stream_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def summary_of(plates: list[dict[str, Any]]) -> dict[str, str]:
    """plate_count and the lowest model score (reviewer-drawn plates have none)."""
    scores = [float(p["score"]) for p in plates if p.get("score") is not None]
    return {"plate_count": str(len(plates)), "min_score": f"{min(scores):.4f}" if scores else ""}


class ReviewIndex:
    def __init__(self, jobs: JobStore, retention_days: int = 90) -> None:
        self.jobs = jobs
        self.client: redis.Redis = jobs.client
        self.retention_days = retention_days

    def _run(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except redis.RedisError as exc:
            raise BrokerError(f"redis {what} failed: {exc}") from exc

    @staticmethod
    def key(job_id: str) -> str:
        return f"{PREFIX}job:{job_id}"

    # -- filling --------------------------------------------------------------------------------
    def entry_from_record(self, record: JobRecord) -> dict[str, str]:
        return {"job_id": record.job_id, "completed_at": record.completed_at or iso_ms(utc_now()),
                "model": record.model or "", "style": record.style, "output_bucket": record.output_bucket,
                "output_key": record.output_key, "sidecar_key": record.sidecar_key,
                "source_bucket": record.source_bucket, "source_key": record.source_key,
                **summary_of(list(record.plates))}

    @staticmethod
    def entry_from_sidecar(sidecar: dict[str, Any], sidecar_key: str) -> dict[str, str]:
        return {"job_id": str(sidecar["job_id"]), "completed_at": str(sidecar.get("completed_at", "")),
                "model": str(sidecar.get("model") or ""), "style": str(sidecar.get("style") or ""),
                "output_bucket": str(sidecar["output"]["bucket"]), "output_key": str(sidecar["output"]["key"]),
                "sidecar_key": sidecar_key, "source_bucket": str(sidecar["source"]["bucket"]),
                "source_key": str(sidecar["source"]["key"]), **summary_of(list(sidecar.get("plates") or []))}

    def put(self, entry: dict[str, str]) -> None:
        pipe = self.client.pipeline()
        pipe.hset(self.key(entry["job_id"]), mapping=entry)   # type: ignore[arg-type]
        pipe.zadd(PREFIX + "jobs", {entry["job_id"]: _ms(entry["completed_at"])})
        if entry.get("model"):
            pipe.sadd(PREFIX + "models", entry["model"])
        self._run("index", pipe.execute)

    def sync(self, sidecar_reader: Callable[[str, str], dict[str, Any] | None] | None = None,
             max_batches: int = 20) -> int:
        """Index the jobs finished since the last call; returns how many were added."""
        added = 0
        cursor = self._run("get", self.client.get, PREFIX + "cursor") or "0-0"
        for _ in range(max_batches):
            entries = self._run("xrange", self.client.xrange, self.jobs.event_stream, min=_next_id(cursor),
                                count=SYNC_BATCH)
            if not entries:
                break
            for entry_id, fields in entries:
                cursor = entry_id
                if fields.get("status") != JobStatus.DONE.value or fields.get("event", "completed") != "completed":
                    continue
                job_id = fields.get("job_id", "")
                record = self.jobs.get(job_id)
                if record is not None and record.status == JobStatus.DONE:
                    self.put(self.entry_from_record(record))
                    added += 1
                elif sidecar_reader is not None:
                    sidecar = sidecar_reader(fields["output_bucket"], fields["sidecar_key"])
                    if sidecar is not None:
                        self.put(self.entry_from_sidecar(sidecar, fields["sidecar_key"]))
                        added += 1
            self._run("set", self.client.set, PREFIX + "cursor", cursor)
            if len(entries) < SYNC_BATCH:
                break
        self._trim()
        if added:
            logger.info("review index: %d finished jobs added (stream at %s)", added, cursor)
        return added

    def _trim(self) -> None:
        cutoff = int((datetime.now(UTC) - timedelta(days=self.retention_days)).timestamp() * 1000)
        old = self._run("zrangebyscore", self.client.zrangebyscore, PREFIX + "jobs", 0, cutoff)
        if old:
            pipe = self.client.pipeline()
            for job_id in old:
                pipe.delete(self.key(job_id), f"{PREFIX}flags:{job_id}")
                pipe.zrem(PREFIX + "jobs", job_id)
                pipe.zrem(PREFIX + "flagged", job_id)
            self._run("trim", pipe.execute)

    def ensure(self, job_id: str, sidecar_reader: Callable[[str, str], dict[str, Any] | None] | None = None,
               ) -> dict[str, str] | None:
        """The index entry of ``job_id``, indexing it from its record (or sidecar) when missing; None
        when the job is unknown or not done."""
        entry = self.get(job_id)
        if entry and entry.get("output_key"):
            return entry
        record = self.jobs.get(job_id)
        if record is not None:
            if record.status != JobStatus.DONE:
                return None
            self.put(self.entry_from_record(record))
            return self.get(job_id)
        return None

    # -- reading --------------------------------------------------------------------------------
    def get(self, job_id: str) -> dict[str, str] | None:
        h = self._run("hgetall", self.client.hgetall, self.key(job_id))
        return h or None

    def models(self) -> list[str]:
        return sorted(self._run("smembers", self.client.smembers, PREFIX + "models"))

    def flags(self, job_id: str) -> list[dict[str, Any]]:
        rows = self._run("lrange", self.client.lrange, f"{PREFIX}flags:{job_id}", 0, -1)
        return [json.loads(r) for r in rows]

    def queue(self, flt: QueueFilter, low_score: float) -> list[dict[str, str]]:
        """Entries matching ``flt``: flagged first (latest flag first), then newest first."""
        if flt.date:
            day = datetime.strptime(flt.date, "%Y-%m-%d").replace(tzinfo=UTC)
            lo, hi = int(day.timestamp() * 1000), int((day + timedelta(days=1)).timestamp() * 1000) - 1
            ids = self._run("zrange", self.client.zrevrangebyscore, PREFIX + "jobs", hi, lo, start=0, num=SCAN_LIMIT)
        else:
            ids = self._run("zrange", self.client.zrevrange, PREFIX + "jobs", 0, SCAN_LIMIT - 1)
        flagged = self._run("zrange", self.client.zrevrange, PREFIX + "flagged", 0, -1)
        order = list(dict.fromkeys([*flagged, *ids]))
        pipe = self.client.pipeline()
        for job_id in order:
            pipe.hgetall(self.key(job_id))
        entries = [e for e in self._run("hgetall", pipe.execute) if e and e.get("output_key")]
        return [e for e in entries if flt.matches(e, low_score)]

    # -- review state ---------------------------------------------------------------------------
    def flag(self, job_id: str, reason: str, by: str) -> int:
        now = utc_now()
        row = json.dumps({"at": iso_ms(now), "reason": reason, "by": by})
        pipe = self.client.pipeline()
        pipe.hincrby(self.key(job_id), "flag_count", 1)
        pipe.hset(self.key(job_id), mapping={"flagged_at": iso_ms(now), "flag_reason": reason})
        pipe.zadd(PREFIX + "flagged", {job_id: int(now.timestamp() * 1000)})
        pipe.lpush(f"{PREFIX}flags:{job_id}", row)
        pipe.ltrim(f"{PREFIX}flags:{job_id}", 0, MAX_FLAGS_KEPT - 1)
        return int(self._run("flag", pipe.execute)[0])

    def mark_reviewed(self, job_id: str, by: str, fields: dict[str, str] | None = None) -> None:
        """Reviewed (accepted or corrected) by ``by``: leaves the open queue, flags cleared."""
        mapping: dict[str, str] = {"reviewed_at": iso_ms(utc_now()), "reviewed_by": by, **(fields or {})}
        pipe = self.client.pipeline()
        pipe.hset(self.key(job_id), mapping=mapping)   # type: ignore[arg-type]
        pipe.hdel(self.key(job_id), "flagged_at", "flag_reason")
        pipe.zrem(PREFIX + "flagged", job_id)
        self._run("review", pipe.execute)
