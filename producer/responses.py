"""Request and response bodies of the upload service (they make the OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Accepted(BaseModel):
    job_id: str
    status: str = Field(description="always 'queued' on acceptance")
    status_url: str = Field(description="GET this for the job's progress")
    source_bucket: str
    source_key: str
    output_bucket: str = Field(description="bucket the concealed photo will be written to")
    output_key: str = Field(description="key of the concealed photo (same format as the original)")
    sidecar_key: str = Field(description="key of the JSON sidecar (plates, model version, timings)")
    style: str
    accepted_at: str = Field(description="ISO-8601 UTC, millisecond precision")


class JobRequest(BaseModel):
    bucket: str = Field(min_length=3, max_length=63, description="S3 bucket name (allowlisted per key)")
    key: str = Field(min_length=1, max_length=1024, description="object key")
    style: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict, description="short printable-ASCII fields")


class Skipped(BaseModel):
    bucket: str
    key: str
    reason: str


class EventsAccepted(BaseModel):
    accepted: list[Accepted]
    skipped: list[Skipped]
    duplicates: list[Skipped] = Field(default_factory=list,
                                      description="object versions that already have a job (a retried "
                                                  "notification, or the same object sent again): no new job")


class EventsRefused(BaseModel):
    """A notification stopped part-way because the key's queue share or rate is used up (429; 503 for
    SNS, which retries only 5xx): the records before the stop are answered as usual, the rest are
    ``not_processed``. Retry after ``Retry-After``: the jobs already made come back as duplicates."""

    detail: str
    accepted: list[Accepted] = Field(default_factory=list)
    skipped: list[Skipped] = Field(default_factory=list)
    duplicates: list[Skipped] = Field(default_factory=list)
    not_processed: list[Skipped] = Field(default_factory=list)


class JobView(BaseModel):
    job_id: str
    status: str = Field(description="queued | running | done | failed")
    status_url: str
    source_bucket: str
    source_key: str
    output_bucket: str
    output_key: str
    sidecar_key: str
    style: str
    model: str | None = Field(None, description="name@version of the model that processed the photo")
    plate_count: int
    plates: list[dict[str, Any]] = Field(description="polygon (4 points, pixels), score, box, det_score")
    error: str | None = Field(None, description="why the job failed (or why it is being retried)")
    accepted_at: str
    queued_at: str | None = Field(None, description="the original was stored; the job is being enqueued")
    started_at: str | None = None
    completed_at: str | None = None
    timings_ms: dict[str, float]
    attempts: int
    metadata: dict[str, str]


class Health(BaseModel):
    status: str = Field(description="ok | down")
    checks: dict[str, str] | None = Field(None, description="per dependency; only with a valid API key")
