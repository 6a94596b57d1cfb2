"""The model registry's settings (``PLATEVEIL_*``), read once at start-up with ``load_settings``.

:class:`RegistryOptions` is what a worker needs to follow the registry (bucket, aliases, cache, the
smoke check); the worker's settings include it. :class:`RegistrySettings` adds the S3/Redis
connection for the ``plateveil models`` registry commands. The promotion quality gate's settings
(``PLATEVEIL_GATE_*``) belong to the release tooling: ``model_training.registry_cli.GateSettings``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from plateveil.settings import ENV_PREFIX, CommonSettings

DEFAULT_MIN_FOUND = 12  # smoke check: of the shipped golden set's 18 plates (the shipped model finds 17)


class RegistryOptions(BaseSettings):
    """The model registry's settings. A mixin: the worker's settings and :class:`RegistrySettings`
    (the ``plateveil models`` commands) both include it."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    registry_bucket: str | None = Field(None, description="bucket of the model registry; unset = workers serve "
                                                          "the bundle of model_dir (the shipped one) and never "
                                                          "look at S3 for models")
    registry_prefix: str = Field("models", description="key prefix of the model registry")
    registry_storage: Literal["s3", "local"] = Field(
        "s3", description="store of the model registry: 's3', or 'local' (the registry bucket is a folder under "
                          "local_storage_dir, for development on one machine)")
    model_name: str = Field("plateveil-plates", description="model name in the registry")
    model_alias: str = Field("production", description="alias the workers serve")
    canary_alias: str = Field("canary", description="alias of the canary model")
    canary_share: float = Field(0.0, ge=0.0, le=1.0, description="share of jobs (by job id hash) sent to the canary")
    model_poll_seconds: float = Field(10.0, gt=0, description="how often workers check the registry's aliases")
    model_cache_dir: Path = Field(Path("~/.cache/plateveil/models"), description="local cache of registry versions")
    smoke_max_ms: float = Field(3000.0, gt=0, description="golden smoke check: slowest photo allowed, ms")
    smoke_min_found: int = Field(DEFAULT_MIN_FOUND, ge=0, description="golden smoke check: how many of the golden set's 18 plates "
                                                        "a model must find to be served or published (0: not "
                                                        "checked; the shipped model finds 17)")


class RegistrySettings(CommonSettings, RegistryOptions):
    """Settings of the ``plateveil models`` registry commands: the registry options plus the
    services' S3 connection; Redis is optional (only the nudge needs it)."""

    redis_url: str | None = Field(  # type: ignore[assignment]
        None, description="Redis URL for the model nudge (unset: workers notice by polling)")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RegistrySettings:
        """The settings a ``PLATEVEIL_*`` environment given as a mapping (e.g. the local stack's) says, over
        the process's own."""
        names = {ENV_PREFIX + name.upper(): name for name in cls.model_fields}
        return cls.model_validate({names[k]: v for k, v in env.items() if k in names})
