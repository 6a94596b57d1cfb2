"""Failed and retried jobs move the worker's metrics by reason (the task run in this process
against the stack's real Redis and S3, as tests/integration/test_worker_tasks.py does)."""

from __future__ import annotations

import pytest

from plateveil.schema import ConcealJob, JobRecord, JobStatus, iso_ms, new_job_id, utc_now
from plateveil_ops.stack import ORIGINALS_BUCKET, OUTPUT_BUCKET
from workers import metrics as worker_metrics

pytestmark = pytest.mark.integration


def _value(name: str, **labels: str) -> float:
    registry = worker_metrics.metrics().registry
    wanted = (name, tuple(sorted(labels.items())))
    return next((s.value for fam in registry.collect() for s in fam.samples
                 if (s.name, tuple(sorted(s.labels.items()))) == wanted), 0.0)


def _job(tasks, source_key: str, output_bucket: str = OUTPUT_BUCKET) -> ConcealJob:
    job_id = new_job_id()
    job = ConcealJob(job_id=job_id, source_bucket=ORIGINALS_BUCKET, source_key=source_key,
                     output_bucket=output_bucket, output_key=f"concealed/metrics/{job_id}.jpg", style="blur",
                     accepted_at=iso_ms(utc_now()))
    tasks.get_context().jobs.create(JobRecord.queued(job))
    return job


def test_retries_then_giving_up_count_as_retries_failure_and_dead_letter(tasks, s3, car_jpeg):
    s3.put_object(Bucket=ORIGINALS_BUCKET, Key="metrics/r.jpg", Body=car_jpeg, ContentType="image/jpeg")
    retries0 = _value("plateveil_job_retries_total", reason="storage")
    failed0 = _value("plateveil_jobs_total", outcome="failed", reason="retries_exhausted")
    dead0 = _value("plateveil_dead_letters_total", reason="retries_exhausted")
    job = _job(tasks, "metrics/r.jpg", output_bucket="no-such-bucket")
    tasks.conceal_photo.apply(args=[job.to_dict()])
    assert tasks.get_context().jobs.get(job.job_id).status is JobStatus.FAILED
    max_retries = tasks.get_context().settings.max_retries
    assert _value("plateveil_job_retries_total", reason="storage") == retries0 + max_retries
    assert _value("plateveil_jobs_total", outcome="failed", reason="retries_exhausted") == failed0 + 1
    assert _value("plateveil_dead_letters_total", reason="retries_exhausted") == dead0 + 1


def test_bad_input_counts_as_a_failure_but_not_as_a_dead_letter(tasks):
    failed0 = _value("plateveil_jobs_total", outcome="failed", reason="source_missing")
    dead0 = sum(_value("plateveil_dead_letters_total", reason=r) for r in worker_metrics.REPLAYABLE)
    job = _job(tasks, "metrics/missing.jpg")
    assert tasks.conceal_photo.apply(args=[job.to_dict()]).get()["status"] == "failed"
    assert _value("plateveil_jobs_total", outcome="failed", reason="source_missing") == failed0 + 1
    assert sum(_value("plateveil_dead_letters_total", reason=r) for r in worker_metrics.REPLAYABLE) == dead0
