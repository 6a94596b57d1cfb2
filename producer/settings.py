"""Settings of the upload service (``PLATEVEIL_*``), read once when the app starts."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from plateveil.schema import DEFAULT_STYLE, STYLES
from plateveil.settings import CommonSettings
from producer.apikeys import KEY_ID, KeyHash, hash_key, parse_key_hashes
from producer.intake_settings import EventsSettings
from producer.validation import parse_source


class ProducerSettings(CommonSettings, EventsSettings):
    api_key_hashes: Annotated[tuple[KeyHash, ...], NoDecode] = Field(
        repr=False, description="accepted API keys, hashed: comma-separated key_id:sha256hex "
                                "(`plateveil keys new` makes one) (required)")
    max_upload_bytes: int = Field(20 * 1024 * 1024, gt=0, description="largest accepted photo, in bytes (else 413)")
    multipart_overhead_bytes: int = Field(64 * 1024, ge=0, description="allowance for multipart framing and "
                                          "form fields on top of max_upload_bytes")
    max_json_bytes: int = Field(64 * 1024, gt=0, description="largest JSON (or other non-photo) request body (413)")
    json_max_depth: int = Field(32, ge=2, description="deepest JSON nesting accepted in a body or metadata (422)")
    json_max_number_chars: int = Field(40, ge=8, description="longest JSON number literal accepted (422)")
    body_idle_timeout_s: float = Field(15.0, gt=0, description="a request body that sends nothing for this "
                                       "long is ended (408)")
    body_total_timeout_s: float = Field(120.0, gt=0, description="a request body must arrive within this (408)")
    rate_per_s: float = Field(10.0, gt=0, description="per-key requests per second (token bucket refill; 429)")
    rate_burst: int = Field(40, ge=1, description="per-key burst (token bucket size)")
    auth_fail_per_s: float = Field(0.5, gt=0, description="failed authentications per second allowed per client IP")
    auth_fail_burst: int = Field(20, ge=1, description="failed authentications in a burst per client IP (then 429)")
    key_max_inflight: int = Field(50, ge=1, description="per-key share of the queue: queued + running jobs (429)")
    queue_retry_after_s: int = Field(5, ge=1, description="Retry-After of a 429 for a full queue share")
    key_inflight_max_age_s: float = Field(3600.0, gt=0, description="a job admitted longer ago than this no "
                                          "longer counts against its key's share (lost or stuck jobs)")
    max_event_records: int = Field(100, ge=1, description="most records in one POST /v1/s3-events (413 above)")
    source_allow: Annotated[dict[str, tuple[str, ...]], NoDecode] = Field(
        default_factory=dict, description="per key id, the bucket/prefix sources POST /v1/jobs and "
        "S3 events may read: 'key_id=bucket/prefix|bucket2;*=bucket3/in/' ('*' = every key); "
        "unset = every key may read its own uploads only (uploads are never readable by another key)")
    sns_key_id: str = Field("sns", pattern=KEY_ID.pattern, description="the key id SNS deliveries act as: its "
                            "sources, rate and queue share apply and their jobs belong to it")
    sqs_key_id: str = Field("sqs", pattern=KEY_ID.pattern, description="the key id `plateveil events consume "
                            "--sqs` acts as: its sources, rate and queue share apply and its jobs belong to it")
    docs_enabled: bool = Field(True, description="serve /docs and /openapi.json (always behind the API key)")
    default_style: str = Field(DEFAULT_STYLE, description="concealment style when a request names none")
    originals_prefix: str = Field("originals", description="key prefix of uploaded originals")
    enqueue_timeout_s: float = Field(5.0, gt=0, description="give up enqueueing after this long (answer 503)")
    health_timeout_s: float = Field(2.0, gt=0, description="per-dependency timeout of GET /healthz")
    # the review pages (producer/review/): their own credential, never an upload key
    review_keys: Annotated[tuple[str, ...], NoDecode] = Field(
        (), repr=False, description="comma-separated reviewer credentials NAME:KEY for the /review pages "
                                    "(unset: the review pages answer 401 to everyone)")
    review_session_ttl_s: int = Field(8 * 3600, ge=60, description="how long a reviewer's login lasts")
    review_low_score: float = Field(0.95, ge=0, le=1, description="review queue: a plate scored below this is "
                                                                   "'low score'")
    review_index_days: int = Field(90, ge=1, description="how long finished jobs stay in the review queue's index")
    jpeg_quality: int = Field(90, ge=1, le=100, description="JPEG/WebP quality of photos re-rendered by a correction "
                                                            "(the worker's PLATEVEIL_JPEG_QUALITY)")
    handoff_max_bytes: int = Field(2 * 1024 * 1024, ge=0, description="an upload up to this size is also left in "
                                   "Redis for the worker, saving it the S3 read (0: never)")
    handoff_ttl_s: int = Field(60, ge=1, description="how long a hand-off waits for a worker; Redis holds at most "
                               "about rate x this x photo size")

    @field_validator("api_key_hashes", mode="before")
    @classmethod
    def _parse_hashes(cls, value: object) -> object:
        if isinstance(value, str):
            value = parse_key_hashes(value)
        if not value:
            raise ValueError("at least one key_id:sha256hex is required (plateveil keys new)")
        return value

    @field_validator("review_keys", mode="before")
    @classmethod
    def _split_review_keys(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(k.strip() for k in value.split(",") if k.strip())
        from producer.review.auth import parse_reviewers

        parse_reviewers(tuple(value))   # type: ignore[arg-type]  # ValueError naming the bad entry
        return value

    @model_validator(mode="after")
    def _review_keys_apart(self) -> ProducerSettings:
        from producer.review.auth import parse_reviewers

        upload = {item.sha256 for item in self.api_key_hashes}
        if {hash_key(key) for key in parse_reviewers(self.review_keys)} & upload:
            raise ValueError("PLATEVEIL_REVIEW_KEYS: a reviewer key must not also be an upload API key")
        return self

    @field_validator("source_allow", mode="before")
    @classmethod
    def _parse_allow(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        out: dict[str, tuple[str, ...]] = {}
        for part in value.split(";"):
            if not part.strip():
                continue
            key_id, sep, sources = part.partition("=")
            key_id = key_id.strip()
            if not sep or not (key_id == "*" or KEY_ID.match(key_id)):
                raise ValueError(f"expected key_id=bucket/prefix|bucket/prefix;..., got {part.strip()!r}")
            for source in sources.split("|"):
                if source.strip():
                    parse_source(source.strip())  # ValueError names the bad one
            out[key_id] = tuple(s.strip() for s in sources.split("|") if s.strip())
        return out

    @field_validator("default_style")
    @classmethod
    def _known_style(cls, value: str) -> str:
        if value not in STYLES:
            raise ValueError(f"unknown style {value!r}; valid styles: {', '.join(STYLES)}")
        return value

    @model_validator(mode="after")
    def _default_allow(self) -> ProducerSettings:
        if not self.source_allow:  # its own uploads (producer.ownership checks the uploader)
            uploads = f"{self.originals_bucket}/{self.originals_prefix.strip('/')}/"
            object.__setattr__(self, "source_allow", {"*": (uploads,)})
        return self

    @property
    def photo_body_limit(self) -> int:
        return self.max_upload_bytes + self.multipart_overhead_bytes

    def sources_for(self, key_id: str) -> tuple[tuple[str, str], ...]:
        """(bucket, prefix) pairs ``key_id`` may read: its own entry plus the '*' entry."""
        entries = self.source_allow.get(key_id, ()) + self.source_allow.get("*", ())
        return tuple(parse_source(e) for e in entries)
