"""Settings of the upload service (``PLATEVEIL_*``), read once when the app starts."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from plateveil.intake_settings import EventsSettings
from plateveil.schema import DEFAULT_STYLE, STYLES
from plateveil.settings import CommonSettings


class ProducerSettings(CommonSettings, EventsSettings):
    api_keys: Annotated[tuple[str, ...], NoDecode] = Field(
        repr=False, description="comma-separated bearer API keys accepted by the upload service (required)")
    max_upload_bytes: int = Field(20 * 1024 * 1024, gt=0, description="largest accepted photo, in bytes (else 413)")
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

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(k.strip() for k in value.split(",") if k.strip())
        if not value:
            raise ValueError("at least one API key is required")
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

        if set(parse_reviewers(self.review_keys)) & set(self.api_keys):
            raise ValueError("PLATEVEIL_REVIEW_KEYS: a reviewer key must not also be an upload API key")
        return self

    @field_validator("default_style")
    @classmethod
    def _known_style(cls, value: str) -> str:
        if value not in STYLES:
            raise ValueError(f"unknown style {value!r}; valid styles: {', '.join(STYLES)}")
        return value
