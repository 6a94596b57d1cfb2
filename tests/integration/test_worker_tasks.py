"""The task's failure policy, run in this process against the stack's real Redis and S3."""

from __future__ import annotations

import pytest

from plateveil.errors import PermanentError
from plateveil.jobs import JobStore
from plateveil.schema import ConcealJob, JobRecord, JobStatus, iso_ms, new_job_id, utc_now
from plateveil_ops.stack import ORIGINALS_BUCKET, OUTPUT_BUCKET

pytestmark = pytest.mark.integration


def _job(source_key: str, output_bucket: str = OUTPUT_BUCKET) -> ConcealJob:
    job_id = new_job_id()
    return ConcealJob(job_id=job_id, source_bucket=ORIGINALS_BUCKET, source_key=source_key,
                      output_bucket=output_bucket, output_key=f"concealed/test/{job_id}.jpg", style="blur",
                      accepted_at=iso_ms(utc_now()))


def _queued(jobs: JobStore, job: ConcealJob) -> None:
    jobs.create(JobRecord.queued(job))


def test_run_job_writes_outputs(tasks, s3, car_jpeg):
    s3.put_object(Bucket=ORIGINALS_BUCKET, Key="tasks/a.jpg", Body=car_jpeg, ContentType="image/jpeg")
    ctx = tasks.get_context()
    job = _job("tasks/a.jpg")
    _queued(ctx.jobs, job)
    record = tasks.run_job(job, ctx)
    assert record is not None and record.status is JobStatus.DONE and record.attempts == 1
    assert s3.head_object(Bucket=OUTPUT_BUCKET, Key=job.sidecar_key)["ContentType"] == "application/json"


def test_missing_source_fails_without_retry(tasks):
    ctx = tasks.get_context()
    job = _job("tasks/missing.jpg")
    _queued(ctx.jobs, job)
    result = tasks.conceal_photo.apply(args=[job.to_dict()]).get()
    assert result["status"] == "failed"
    record = ctx.jobs.get(job.job_id)
    assert record.status is JobStatus.FAILED and "does not exist" in record.error and record.attempts == 1


def test_storage_errors_are_retried_then_fail(tasks, s3, car_jpeg):
    """Writing to a bucket that does not exist is a (retryable) S3 error on every try."""
    s3.put_object(Bucket=ORIGINALS_BUCKET, Key="tasks/b.jpg", Body=car_jpeg, ContentType="image/jpeg")
    ctx = tasks.get_context()
    job = _job("tasks/b.jpg", output_bucket="no-such-bucket")
    _queued(ctx.jobs, job)
    tasks.conceal_photo.apply(args=[job.to_dict()])
    record = ctx.jobs.get(job.job_id)
    assert record.status is JobStatus.FAILED
    assert record.error.startswith(f"gave up after {ctx.settings.max_retries + 1} attempts")
    assert record.attempts == ctx.settings.max_retries + 1


def test_a_job_that_keeps_crashing_workers_is_failed(tasks, s3, car_jpeg):
    ctx = tasks.get_context()
    job = _job("tasks/c.jpg")
    _queued(ctx.jobs, job)
    for _ in range(ctx.settings.max_deliveries):  # deliveries that never finished (worker killed)
        ctx.jobs.mark_running(job)
    with pytest.raises(PermanentError, match=f"worker crashed {ctx.settings.max_deliveries} times"):
        tasks.run_job(job, ctx)


def test_delays_back_off_with_jitter_and_are_bounded(tasks):
    import random

    ctx = tasks.get_context()
    rng = random.Random(7)
    for n in range(8):
        ceiling = min(ctx.settings.retry_backoff_s * 2 ** n, ctx.settings.retry_backoff_max_s)
        delays = [tasks.retry_delay(n, ctx, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 40  # jittered: jobs failing together do not retry together
