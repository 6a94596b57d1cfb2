"""A worker whose model bundle cannot be loaded ends each job ``failed`` with the load error as its
reason (a permanent ModelError), not as "internal error" and not in a retry loop."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from model_store.errors import ModelError
from plateveil.errors import PermanentError
from plateveil.schema import ConcealJob, JobRecord, JobStatus, iso_ms, new_job_id, utc_now
from plateveil_ops.stack import ORIGINALS_BUCKET, OUTPUT_BUCKET

pytestmark = pytest.mark.integration


def test_model_errors_are_permanent() -> None:
    assert issubclass(ModelError, PermanentError)


@pytest.mark.parametrize("broken", ["no-model-json", "model-json-without-detector"])
def test_a_broken_bundle_fails_the_job_with_its_reason(broken: str, stack, s3, car_jpeg, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from workers import tasks as module
    from workers.settings import WorkerSettings

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    if broken == "model-json-without-detector":
        (bundle / "model.json").write_text(json.dumps({"name": "x", "version": "1"}))
    ctx = module.WorkerContext.from_settings(WorkerSettings(model_dir=str(bundle), registry_bucket=None))
    monkeypatch.setattr(module, "_context", ctx)
    monkeypatch.setattr(module, "_context_pid", os.getpid())
    s3.put_object(Bucket=ORIGINALS_BUCKET, Key="tasks/model-error.jpg", Body=car_jpeg, ContentType="image/jpeg")
    job_id = new_job_id()
    job = ConcealJob(job_id=job_id, source_bucket=ORIGINALS_BUCKET, source_key="tasks/model-error.jpg",
                     output_bucket=OUTPUT_BUCKET, output_key=f"concealed/test/{job_id}.jpg", style="blur",
                     accepted_at=iso_ms(utc_now()))
    ctx.jobs.create(JobRecord.queued(job))

    result = module.conceal_photo.apply(args=[job.to_dict()]).get()

    assert result["status"] == "failed"
    record = ctx.jobs.get(job.job_id)
    assert record.status is JobStatus.FAILED and record.attempts == 1
    assert "internal error" not in record.error
    assert str(bundle) in record.error
    assert ("not found" if broken == "no-model-json" else "lacks") in record.error
