"""Settings of the event intake (``PLATEVEIL_*``): a mixin of :class:`producer.settings.ProducerSettings`,
so the upload service and ``plateveil events consume`` read them once at start-up with the rest
(producer/intake/ uses them); ``plateveil doctor`` (plateveil_ops) reads them from here too."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from plateveil.settings import ENV_PREFIX

AWS_SNS_URL = r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/"


class EventsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    events_prefixes: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="comma-separated key prefixes an S3 notification must match to make a job (none = all)")
    events_suffixes: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="comma-separated key suffixes (case-insensitive), e.g. .jpg,.jpeg,.png (none = all)")
    events_dedupe_ttl_s: int = Field(7 * 24 * 3600, ge=60,
                                     description="how long a delivered object version is remembered (one job each)")
    sns_topic_arns: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="comma-separated SNS topic ARNs whose messages are taken (none = SNS intake off)")
    sns_cert_url_pattern: str = Field(AWS_SNS_URL, description="regex a SigningCertURL must match")
    sns_subscribe_url_pattern: str = Field(AWS_SNS_URL, description="regex a SubscribeURL must match to be visited")
    sns_fetch_timeout_s: float = Field(5.0, gt=0, description="timeout of the certificate / SubscribeURL requests")
    sqs_endpoint_url: str | None = Field(None, description="SQS endpoint (moto, LocalStack); unset = AWS")
    sqs_region: str | None = Field(None, description="SQS region; unset = from the queue URL / AWS_DEFAULT_REGION")
    sqs_wait_time_s: int = Field(20, ge=0, le=20, description="SQS long polling wait per receive")
    sqs_max_messages: int = Field(10, ge=1, le=10, description="SQS messages per receive")

    @field_validator("events_prefixes", "events_suffixes", "sns_topic_arns", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value
