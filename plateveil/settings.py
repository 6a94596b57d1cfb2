"""Settings shared by every service, read from ``PLATEVEIL_*`` environment variables.

Each service has one typed settings class (``producer.settings.ProducerSettings``,
``workers.settings.WorkerSettings``) built on :class:`CommonSettings` and read ONCE at start-up
with :func:`load_settings`, which turns a validation error into one clear message naming the
variables. AWS credentials and region also come from the standard ``AWS_*`` variables (boto3's
own chain) when the ``PLATEVEIL_S3_*`` ones are unset. Every field is documented in README.md.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from plateveil.schema import DEFAULT_EVENT_STREAM, DEFAULT_QUEUE

ENV_PREFIX = "PLATEVEIL_"


class SettingsError(SystemExit):
    """Raised at start-up when the environment does not describe a valid configuration."""


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    redis_url: str = Field(description="Redis URL: Celery broker, job status store and event stream "
                                       "(required, e.g. redis://127.0.0.1:6379/0)")
    queue: str = Field(DEFAULT_QUEUE, description="Celery queue (a Redis list) the jobs go to")
    event_stream: str = Field(DEFAULT_EVENT_STREAM, description="Redis stream receiving one entry per finished job")
    event_stream_maxlen: int = Field(100_000, ge=1, description="approximate cap of the event stream (XADD MAXLEN ~)")
    job_ttl_s: int = Field(7 * 24 * 3600, ge=60, description="how long job status records live in Redis")
    storage: str = Field("s3", description="object store: 's3' or 'local' (a directory, for development)")
    local_storage_dir: str = Field(".stack/objects", description="root folder of the 'local' object store")
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint (MinIO, moto); unset = AWS or AWS_ENDPOINT_URL")
    s3_region: str | None = Field(None, description="S3 region; unset = AWS_DEFAULT_REGION / AWS_REGION")
    s3_access_key_id: str | None = Field(None, description="S3 access key; unset = AWS_ACCESS_KEY_ID / profile")
    s3_secret_access_key: str | None = Field(None, repr=False, description="S3 secret key; unset = AWS_SECRET_ACCESS_KEY")
    s3_connect_timeout_s: float = Field(3.0, gt=0, description="S3 connect timeout")
    s3_read_timeout_s: float = Field(15.0, gt=0, description="S3 read timeout")
    s3_max_attempts: int = Field(3, ge=1, description="S3 attempts per call (botocore standard retry mode)")
    originals_bucket: str = Field("plateveil-originals", description="private bucket of uploaded originals")
    output_bucket: str = Field("plateveil-concealed", description="bucket of concealed photos and JSON sidecars")
    output_prefix: str = Field("concealed", description="key prefix of concealed photos")
    log_format: str = Field("text", description="log lines: 'json' (one object per line) or 'text'")
    log_level: str = Field("INFO", description="log level: DEBUG, INFO, WARNING, ERROR")

    @field_validator("redis_url", "s3_access_key_id", "s3_secret_access_key")
    @classmethod
    def _no_placeholder(cls, value: str | None) -> str | None:
        from plateveil.placeholders import placeholder_problem

        problem = placeholder_problem(value) if value else None
        if problem:
            raise ValueError(f"{problem}: a copy of the example secret? Set the real value")
        return value

    @field_validator("log_format", "log_level")
    @classmethod
    def _log_choice(cls, value: str, info: Any) -> str:
        from plateveil.logs import FORMATS, LEVELS

        value = value.strip().lower() if info.field_name == "log_format" else value.strip().upper()
        valid = FORMATS if info.field_name == "log_format" else LEVELS
        if value not in valid:
            raise ValueError(f"{value!r} is not one of {', '.join(valid)}")
        return value


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S]) -> S:
    """Read ``cls`` from the environment; exit with a readable message if it is invalid."""
    try:
        return cls()
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ENV_PREFIX + "_".join(str(p) for p in err["loc"]).upper() if err["loc"] else "settings"
            lines.append(f"  {name}: {err['msg']}")
        raise SettingsError(f"invalid {cls.__name__} configuration:\n" + "\n".join(lines)) from None
