"""The job schema shared by the upload service and the workers.

The producer enqueues jobs *by task name* (:data:`TASK_CONCEAL`) with a :class:`ConcealJob`
payload; the worker reports progress in a :class:`JobRecord` (our own Redis job store, not a Celery
result backend) and announces the end of each job with a :class:`CompletionEvent` on a Redis
stream. This module imports nothing heavy: no mxnet, no numpy, no workers - a test proves it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any

from plateveil import keys

TASK_CONCEAL = "plateveil.conceal_photo"
"""Celery task name of the concealment job (``celery.send_task(TASK_CONCEAL, ...)``)."""

DEFAULT_QUEUE = "plateveil.conceal"
"""Default Celery queue; with the Redis broker it is a Redis list of that name (KEDA scales on it)."""

DEFAULT_EVENT_STREAM = keys.EVENT_STREAM

STYLES = ("blur", "pixelate", "solid", "overlay")
"""The concealment styles a job may name: the one list (``plateveil.conceal`` has one module per
style and checks at import that it implements exactly these plus :data:`NULL_STYLE`)."""

DEFAULT_STYLE = "blur"
"""The style of a job that names none (``PLATEVEIL_DEFAULT_STYLE`` may choose another of :data:`STYLES`)."""

NULL_STYLE = "none"
"""The style that changes nothing: for the ``plateveil conceal`` command and benchmarks, never a job."""

# image format (as ``plateveil.imaging.sniff_image`` names it) -> (content type, file extension)
FORMATS: dict[str, tuple[str, str]] = {
    "jpeg": ("image/jpeg", "jpg"),
    "png": ("image/png", "png"),
    "webp": ("image/webp", "webp"),
    "bmp": ("image/bmp", "bmp"),
    "tiff": ("image/tiff", "tif"),
}
_EXT_FORMATS = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png", "webp": "webp", "bmp": "bmp", "tif": "tiff",
                "tiff": "tiff"}
_CONTENT_TYPE_FORMATS = {ct: fmt for fmt, (ct, _) in FORMATS.items()} | {"image/jpg": "jpeg", "image/pjpeg": "jpeg"}


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED)


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_ms(moment: datetime) -> str:
    """ISO-8601 UTC with millisecond precision: ``2024-05-01T12:00:00.123Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def new_job_id() -> str:
    return uuid.uuid4().hex


def format_for(content_type: str | None = None, key: str | None = None) -> str | None:
    """Best guess of an image format from a content type, else from a key's extension."""
    if content_type:
        fmt = _CONTENT_TYPE_FORMATS.get(content_type.split(";")[0].strip().lower())
        if fmt:
            return fmt
    if key:
        return _EXT_FORMATS.get(PurePosixPath(key).suffix.lstrip(".").lower())
    return None


def content_type_for(fmt: str) -> str:
    return FORMATS.get(fmt, ("application/octet-stream", "bin"))[0]


def extension_for(fmt: str | None) -> str:
    return FORMATS[fmt][1] if fmt in FORMATS else "img"


def dated_key(prefix: str, job_id: str, ext: str, moment: datetime) -> str:
    """``<prefix>/YYYY/MM/DD/<job_id>.<ext>``."""
    return f"{prefix}/{moment:%Y/%m/%d}/{job_id}.{ext}"


def sidecar_key_for(output_key: str) -> str:
    return f"{output_key}.json"


@dataclass(frozen=True)
class ConcealJob:
    """The Celery task payload: where the original is, where the result goes, how to conceal."""

    job_id: str
    source_bucket: str
    source_key: str
    output_bucket: str
    output_key: str
    style: str
    accepted_at: str
    metadata: dict[str, str] = field(default_factory=dict)
    key_id: str = ""  # id of the API key that submitted the job (never the key); "" when unknown

    @property
    def sidecar_key(self) -> str:
        return sidecar_key_for(self.output_key)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ConcealJob:
        return cls(
            job_id=str(d["job_id"]), source_bucket=str(d["source_bucket"]), source_key=str(d["source_key"]),
            output_bucket=str(d["output_bucket"]), output_key=str(d["output_key"]), style=str(d["style"]),
            accepted_at=str(d["accepted_at"]),
            metadata={str(k): str(v) for k, v in (d.get("metadata") or {}).items()},
            key_id=str(d.get("key_id") or ""),
        )


@dataclass(frozen=True)
class JobRecord:
    """What ``GET /v1/jobs/{id}`` answers: the job and how far it got."""

    job_id: str
    status: JobStatus
    source_bucket: str
    source_key: str
    output_bucket: str
    output_key: str
    sidecar_key: str
    style: str
    accepted_at: str
    queued_at: str | None = None  # the original is stored and the job about to be enqueued
    started_at: str | None = None
    completed_at: str | None = None
    model: str | None = None
    plates: tuple[dict[str, Any], ...] = ()
    error: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    attempts: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    key_id: str = ""

    @classmethod
    def queued(cls, job: ConcealJob) -> JobRecord:
        return cls(job_id=job.job_id, status=JobStatus.QUEUED, source_bucket=job.source_bucket,
                   source_key=job.source_key, output_bucket=job.output_bucket, output_key=job.output_key,
                   sidecar_key=job.sidecar_key, style=job.style, accepted_at=job.accepted_at,
                   queued_at=iso_ms(utc_now()),
                   metadata=dict(job.metadata), key_id=job.key_id)

    @property
    def plate_count(self) -> int:
        return len(self.plates)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status.value
        d["plates"] = list(self.plates)
        d["plate_count"] = self.plate_count
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobRecord:
        return cls(
            job_id=str(d["job_id"]), status=JobStatus(d["status"]), source_bucket=str(d["source_bucket"]),
            source_key=str(d["source_key"]), output_bucket=str(d["output_bucket"]),
            output_key=str(d["output_key"]), sidecar_key=str(d["sidecar_key"]), style=str(d["style"]),
            accepted_at=str(d["accepted_at"]), queued_at=d.get("queued_at") or None, started_at=d.get("started_at"),
            completed_at=d.get("completed_at") or None, model=d.get("model") or None,
            plates=tuple(d.get("plates") or ()), error=d.get("error") or None,
            timings_ms={str(k): float(v) for k, v in (d.get("timings_ms") or {}).items()},
            attempts=int(d.get("attempts") or 0),
            metadata={str(k): str(v) for k, v in (d.get("metadata") or {}).items()},
            key_id=str(d.get("key_id") or ""),
        )

    # Redis hash representation: every value a string, nested values as JSON.
    _JSON_FIELDS = ("plates", "timings_ms", "metadata")

    def to_hash(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in self.to_dict().items():
            if key == "plate_count" or value is None:
                continue
            out[key] = json.dumps(value, sort_keys=True) if key in self._JSON_FIELDS else str(value)
        return out

    @classmethod
    def from_hash(cls, h: dict[str, str]) -> JobRecord:
        d: dict[str, Any] = dict(h)
        for key in cls._JSON_FIELDS:
            if key in d:
                d[key] = json.loads(d[key])
        return cls.from_dict(d)


@dataclass(frozen=True)
class CompletionEvent:
    """One entry of the completion stream (``XADD plateveil:events``), all values strings.

    ``event`` is ``completed`` (the worker finished the job; the field is left out of the entry, as it
    always was) or ``corrected`` (a reviewer changed the concealed photo: ``status`` stays ``done``,
    ``plate_count`` and ``completed_at`` are those of the correction)."""

    job_id: str
    status: JobStatus
    output_bucket: str
    output_key: str
    sidecar_key: str
    model: str = ""
    plate_count: int = 0
    error: str = ""
    completed_at: str = ""
    event: str = "completed"

    def to_fields(self) -> dict[str, str]:
        d = asdict(self)
        d["status"] = self.status.value
        if d["event"] == "completed":
            del d["event"]
        return {k: str(v) for k, v in d.items()}

    @classmethod
    def from_fields(cls, f: dict[str, str]) -> CompletionEvent:
        return cls(job_id=f["job_id"], status=JobStatus(f["status"]), output_bucket=f["output_bucket"],
                   output_key=f["output_key"], sidecar_key=f["sidecar_key"], model=f.get("model", ""),
                   plate_count=int(f.get("plate_count") or 0), error=f.get("error", ""),
                   completed_at=f.get("completed_at", ""), event=f.get("event", "completed"))

    @classmethod
    def of(cls, record: JobRecord) -> CompletionEvent:
        return cls(job_id=record.job_id, status=record.status, output_bucket=record.output_bucket,
                   output_key=record.output_key, sidecar_key=record.sidecar_key, model=record.model or "",
                   plate_count=record.plate_count, error=record.error or "",
                   completed_at=record.completed_at or "")
