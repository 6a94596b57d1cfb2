"""Settings of the upload service (``PLATEVEIL_*``), read once when the app starts."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from plateveil.schema import DEFAULT_STYLE, STYLES
from plateveil.settings import CommonSettings


class ProducerSettings(CommonSettings):
    api_keys: Annotated[tuple[str, ...], NoDecode] = Field(
        repr=False, description="comma-separated bearer API keys accepted by the upload service (required)")
    max_upload_bytes: int = Field(20 * 1024 * 1024, gt=0, description="largest accepted photo, in bytes (else 413)")
    default_style: str = Field(DEFAULT_STYLE, description="concealment style when a request names none")
    originals_prefix: str = Field("originals", description="key prefix of uploaded originals")
    enqueue_timeout_s: float = Field(5.0, gt=0, description="give up enqueueing after this long (answer 503)")
    health_timeout_s: float = Field(2.0, gt=0, description="per-dependency timeout of GET /healthz")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(k.strip() for k in value.split(",") if k.strip())
        if not value:
            raise ValueError("at least one API key is required")
        return value

    @field_validator("default_style")
    @classmethod
    def _known_style(cls, value: str) -> str:
        if value not in STYLES:
            raise ValueError(f"unknown style {value!r}; valid styles: {', '.join(STYLES)}")
        return value
