"""Settings of the worker (``PLATEVEIL_*``), read once when the worker starts."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from model_store.backends import BACKENDS, DEFAULT_BACKEND, check_backend
from model_store.registry_settings import RegistryOptions
from plateveil.metrics import DEFAULT_WORKER_METRICS_PORT
from plateveil.schema import DEFAULT_STYLE, STYLES
from plateveil.settings import CommonSettings
from workers.webhook_contract import WebhookSettings


class WorkerSettings(CommonSettings, RegistryOptions, WebhookSettings):
    """The worker's settings; the model registry ones (``registry_bucket``, ``model_alias``,
    ``canary_share``...) come from :class:`~model_store.registry_settings.RegistryOptions`, the webhook ones
    (``webhooks``, ``webhook_max_attempts``...) from :class:`~workers.webhook_contract.WebhookSettings`."""

    backend: str = Field(DEFAULT_BACKEND, description=f"model backend: {' or '.join(BACKENDS)} (default "
                                                       f"{DEFAULT_BACKEND}, CPU); checked when the worker starts")
    model_dir: str | None = Field(None, description="model bundle folder; unset = the shipped bundle")
    threads: int = Field(1, ge=0, description="inference threads per worker process (0 = runtime default)")
    jpeg_quality: int = Field(90, ge=1, le=100, description="JPEG/WebP quality of concealed photos")
    fast_paths: bool = Field(True, description="a JPEG in which no plate is found is kept as it came, metadata "
                                               "removed, not re-encoded (false: re-encode every photo)")
    reduced_decode: bool = Field(False, description="with fast_paths: the detector sees a JPEG decoded at reduced "
                                                    "scale, the full decode only where it found something (cheaper "
                                                    "without plates; detections differ slightly)")
    plate_blocks: bool = Field(True, description="with fast_paths: a baseline JPEG is decoded at reduced scale for the "
                                                 "detector and at full size only around candidates, and written by "
                                                 "replacing only the plates' 8x8 blocks in the original stream "
                                                 "(false: decode and re-encode the whole photo)")
    soft_time_limit_s: float = Field(20.0, gt=0, description="a job past this fails as 'timed out'")
    hard_time_limit_s: float = Field(30.0, gt=0, description="the worker process is killed past this")
    visibility_timeout_s: int = Field(
        90, gt=0, description="Redis broker: a job delivered this long ago and not acknowledged (its worker died) "
                              "is delivered again; must exceed hard_time_limit_s + retry_backoff_max_s")
    restore_interval_s: int = Field(10, ge=1, description="how often a worker looks for such jobs to deliver again")
    max_retries: int = Field(60, ge=0, description="most retries of a job after retryable (S3/Redis) errors")
    retry_window_s: float = Field(600.0, gt=0, description="a job keeps retrying retryable errors for this long "
                                                           "(from its first one), then fails")
    retry_backoff_s: float = Field(1.0, gt=0, description="first retry delay; doubles each retry, with jitter")
    retry_backoff_max_s: float = Field(30.0, gt=0, description="largest retry delay")
    s3_read_timeout_s: float = Field(5.0, gt=0, description="S3 read timeout (worker default; with the attempts and "
                                                          "the connect timeout it must fit the soft time limit)")
    s3_max_attempts: int = Field(2, ge=1, description="S3 attempts per call (worker default; see s3_read_timeout_s)")
    max_deliveries: int = Field(3, ge=1, description="a job whose deliveries crashed or stalled the worker this "
                                                     "often fails ('worker crashed N times')")
    reconcile_interval_s: float = Field(30.0, ge=0, description="how often a worker runs the reconciler "
                                                                "(one worker at a time; 0 = never)")
    reconcile_grace_s: float = Field(60.0, gt=0, description="the reconciler looks only at jobs accepted longer ago")
    reconcile_confirm_s: float = Field(2.0, ge=0, description="a job must be missing from the queue on two looks "
                                                              "this far apart before it is requeued")
    max_requeues: int = Field(3, ge=0, description="a job the reconciler had to requeue this often fails instead")
    default_style: str = Field(DEFAULT_STYLE, description="style used when a job names none")
    metrics_port: int = Field(DEFAULT_WORKER_METRICS_PORT, ge=0, le=65535, description="port of the worker's Prometheus exporter (0 = none)")
    metrics_addr: str = Field("0.0.0.0", description="address the worker's Prometheus exporter binds")
    decode_budget_mb: int = Field(256, ge=16, description="decode memory budget per photo, MiB: over it a JPEG "
                                  "is decoded at 1/2-1/8 scale, anything else fails (plateveil.imaging)")

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        return check_backend(value)

    @model_validator(mode="after")
    def _check(self) -> WorkerSettings:
        if self.hard_time_limit_s <= self.soft_time_limit_s:
            raise ValueError("hard_time_limit_s must be larger than soft_time_limit_s")
        if self.visibility_timeout_s <= self.hard_time_limit_s + self.retry_backoff_max_s:
            raise ValueError("visibility_timeout_s must exceed hard_time_limit_s + retry_backoff_max_s, "
                             "or Redis redelivers jobs that are still running")
        if self.visibility_timeout_s <= self.webhook_backoff_max_s:
            raise ValueError("visibility_timeout_s must exceed webhook_backoff_max_s, or Redis redelivers "
                             "webhooks that wait for their retry")
        s3_worst = self.s3_max_attempts * (self.s3_connect_timeout_s + self.s3_read_timeout_s)
        if s3_worst >= self.soft_time_limit_s:
            raise ValueError(f"an S3 call may hang for s3_max_attempts x (s3_connect_timeout_s + s3_read_timeout_s) = "
                             f"{s3_worst:g} s, which must be under soft_time_limit_s ({self.soft_time_limit_s:g} s), "
                             "or an S3 outage fails jobs as 'timed out' instead of retrying them")
        if self.default_style not in STYLES:
            raise ValueError(f"unknown default_style {self.default_style!r}; valid: {', '.join(STYLES)}")
        return self
