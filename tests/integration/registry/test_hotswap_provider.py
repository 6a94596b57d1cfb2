"""The worker's ModelProvider with a registry configured: jobs run by ``run_job`` record the version
(production or canary) that concealed them in the sidecar, the S3 metadata and the job status."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from model_store.bundle import default_model_dir, read_config
from model_store.registry import Registry
from plateveil.jobs import JobStore
from plateveil.schema import ConcealJob, JobRecord, JobStatus, iso_ms, utc_now
from plateveil.storage.s3 import S3Store
from plateveil_ops.samples import render_scene
from workers.hotswap import job_bucket
from workers.models import ModelProvider
from workers.settings import WorkerSettings

pytestmark = pytest.mark.integration


def worker_settings(moto_url: str, redis_url: str, tmp_path: Path, **overrides: Any) -> WorkerSettings:
    values: dict[str, Any] = dict(
        redis_url=redis_url, s3_endpoint_url=moto_url, s3_region="us-east-1", s3_access_key_id="testing",
        s3_secret_access_key="testing", model_cache_dir=tmp_path / "cache", model_poll_seconds=0.2, threads=1)
    values.update(overrides)
    return WorkerSettings(**values)


@pytest.fixture
def provider_factory() -> Iterator[Any]:
    made: list[ModelProvider] = []

    def make(settings: WorkerSettings) -> ModelProvider:
        provider = ModelProvider(settings)
        made.append(provider)
        provider.start()
        return provider

    yield make
    for provider in made:
        provider.stop()


def test_without_a_registry_the_shipped_bundle_is_served(registry_moto_url: str, registry_redis_url: str,
                                                         tmp_path: Path, provider_factory: Any) -> None:
    provider = provider_factory(worker_settings(registry_moto_url, registry_redis_url, tmp_path))
    shipped = read_config(default_model_dir())["version"]
    assert provider.pick("a").version == shipped
    assert provider.state()["loaded"] is True
    assert not (tmp_path / "cache").exists()


def test_registry_promotion_reaches_the_provider(registry: Registry, bundle_factory: Any, bucket: str,
                                                 registry_moto_url: str, registry_redis_url: str,
                                                 tmp_path: Path, provider_factory: Any) -> None:
    registry.publish(bundle_factory("1.0.0"))
    registry.publish(bundle_factory("1.1.0"))
    registry.promote("1.0.0")
    provider = provider_factory(worker_settings(registry_moto_url, registry_redis_url, tmp_path,
                                                registry_bucket=bucket))
    assert provider.pick("a").tag == "plateveil-plates@1.0.0"
    state = provider.state()
    assert state["loaded"] and state["model"] == "plateveil-plates@1.0.0" and state["source"] == "registry"
    registry.promote("1.1.0")
    deadline = time.monotonic() + 15
    while provider.pick("a").version != "1.1.0":
        assert time.monotonic() < deadline, provider.state()
        time.sleep(0.05)


def test_jobs_record_the_model_version_that_ran_them(registry: Registry, bundle_factory: Any, bucket: str,
                                                     s3: Any, redis_client: Any, registry_moto_url: str,
                                                     registry_redis_url: str, tmp_path: Path,
                                                     provider_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATEVEIL_REDIS_URL", registry_redis_url)  # workers.tasks reads settings on import
    from workers.tasks import WorkerContext, run_job

    registry.publish(bundle_factory("1.0.0"))
    registry.publish(bundle_factory("1.1.0"))
    registry.promote("1.0.0")
    registry.promote("1.1.0", alias="canary")
    settings = worker_settings(registry_moto_url, registry_redis_url, tmp_path, registry_bucket=bucket,
                               canary_share=0.5, originals_bucket=bucket, output_bucket=bucket)
    ctx = WorkerContext(settings, S3Store.from_settings(settings), JobStore(redis_client),
                        provider_factory(settings))
    s3.put_object(Bucket=bucket, Key="originals/car.jpg", Body=render_scene(seed=3, size=(320, 240)).jpeg())

    job_ids = [f"job-{i}" for i in range(40)]
    canary_id = next(j for j in job_ids if job_bucket(j) < 0.5)
    production_id = next(j for j in job_ids if job_bucket(j) >= 0.5)
    for job_id, expected in ((canary_id, "plateveil-plates@1.1.0"), (production_id, "plateveil-plates@1.0.0")):
        job = ConcealJob(job_id=job_id, source_bucket=bucket, source_key="originals/car.jpg", output_bucket=bucket,
                         output_key=f"concealed/{job_id}.jpg", style="blur", accepted_at=iso_ms(utc_now()))
        ctx.jobs.create(JobRecord.queued(job))
        record = run_job(job, ctx)
        assert record is not None and record.status is JobStatus.DONE
        assert record.model == expected
        sidecar = json.loads(s3.get_object(Bucket=bucket, Key=job.sidecar_key)["Body"].read())
        assert sidecar["model"] == expected
        head = s3.head_object(Bucket=bucket, Key=job.output_key)
        assert head["Metadata"]["model-version"] == expected
