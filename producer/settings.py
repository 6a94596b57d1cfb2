"""Settings of the upload service (``PLATEVEIL_*``), read once when the app starts."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from plateveil.placeholders import placeholder_problem
from plateveil.schema import DEFAULT_STYLE, STYLES
from plateveil.settings import ENV_PREFIX, CommonSettings
from producer.apikeys import KEY_ID, KeyHash, parse_key_hashes
from producer.intake_settings import EventsSettings
from producer.validation import parse_source


class HeaderTimeoutSettings(BaseSettings):
    """Read by the HTTP protocol (producer/server.py) when uvicorn loads it, before the app exists."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    header_timeout_s: float = Field(10.0, gt=0, description="a request's line and headers must arrive within this "
                                    "(from the connection, or from the first byte of a later request on a kept-alive "
                                    "one), else 408 and the connection is closed (uvicorn --http "
                                    "producer.server:HeaderTimeoutH11Protocol)")


class ProducerSettings(CommonSettings, EventsSettings, HeaderTimeoutSettings):
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
    review_key_hashes: Annotated[tuple[KeyHash, ...], NoDecode] = Field(
        (), repr=False, description="reviewer credentials of the /review pages, hashed: comma-separated "
                                    "name:sha256hex (`plateveil keys new --review --id NAME` makes one; unset: the "
                                    "review pages answer 401 to everyone)")
    review_keys: Annotated[tuple[str, ...], NoDecode] = Field(
        (), repr=False, description="no longer read: reviewer keys in plain text are refused at start-up "
                                    "(use PLATEVEIL_REVIEW_KEY_HASHES)")
    review_login_per_s: float = Field(0.05, gt=0, description="review login attempts per second allowed per client "
                                      "IP and per reviewer name (token bucket refill; then 429 + Retry-After)")
    review_login_burst_per_ip: int = Field(10, ge=1, description="review login attempts in a burst per client IP")
    review_login_burst_per_name: int = Field(20, ge=1, description="review login attempts in a burst per reviewer "
                                             "name (from every address together)")
    review_cookie_secure: str = Field("auto", description="'auto': the session cookie is Secure when the request "
                                      "came over https (as the trusted proxy says: uvicorn --proxy-headers, "
                                      "FORWARDED_ALLOW_IPS); 'always': Secure whatever the scheme")
    # S3 on the request path: fail fast (producer/breaker.py)
    api_s3_connect_timeout_s: float = Field(1.0, gt=0, description="S3 connect timeout of the API's requests")
    api_s3_read_timeout_s: float = Field(3.0, gt=0, description="S3 read timeout of the API's requests (one attempt)")
    s3_breaker_failures: int = Field(3, ge=1, description="consecutive S3 failures that open the API's circuit "
                                     "breaker (then 503 + Retry-After at once)")
    s3_breaker_open_s: float = Field(5.0, gt=0, description="how long the breaker stays open before one trial call")
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
            _refuse_placeholder("PLATEVEIL_API_KEY_HASHES", value)
            value = parse_key_hashes(value)
        if not value:
            raise ValueError("at least one key_id:sha256hex is required (plateveil keys new)")
        return value

    @field_validator("review_key_hashes", mode="before")
    @classmethod
    def _parse_review_hashes(cls, value: object) -> object:
        if isinstance(value, str):
            _refuse_placeholder("PLATEVEIL_REVIEW_KEY_HASHES", value)
            value = parse_key_hashes(value)
        return value

    @field_validator("review_keys", mode="before")
    @classmethod
    def _refuse_plain_review_keys(cls, value: object) -> object:
        if value and (not isinstance(value, str) or value.strip()):
            raise ValueError("reviewer keys in plain text are no longer accepted: give their hashes in "
                             "PLATEVEIL_REVIEW_KEY_HASHES (`echo KEY | plateveil keys hash --id NAME` per reviewer, "
                             "or new keys with `plateveil keys new --review --id NAME`) and unset PLATEVEIL_REVIEW_KEYS")
        return ()

    @field_validator("review_cookie_secure")
    @classmethod
    def _cookie_choice(cls, value: str) -> str:
        if value.strip().lower() not in ("auto", "always"):
            raise ValueError("'auto' or 'always'")
        return value.strip().lower()

    @model_validator(mode="after")
    def _review_keys_apart(self) -> ProducerSettings:
        upload = {item.sha256 for item in self.api_key_hashes}
        if {item.sha256 for item in self.review_key_hashes} & upload:
            raise ValueError("PLATEVEIL_REVIEW_KEY_HASHES: a reviewer key must not also be an upload API key")
        for name, items in (("PLATEVEIL_API_KEY_HASHES", self.api_key_hashes),
                            ("PLATEVEIL_REVIEW_KEY_HASHES", self.review_key_hashes)):
            for item in items:
                _refuse_placeholder(f"{name} entry {item.key_id!r}", item.sha256)
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


def _refuse_placeholder(what: str, value: str) -> None:
    problem = placeholder_problem(value)
    if problem:
        raise ValueError(f"{what} {problem}: a copy of the example secret? Make real keys with "
                         "`plateveil keys new` (API) / `plateveil keys new --review --id NAME` (reviewers)")
