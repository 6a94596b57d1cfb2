"""Exactly one end per job, vanished records, the dead-letter list and the reconciler, against the
session stack's real Redis, S3 server and worker."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from plateveil.jobs import DLQ_KEY, OPEN_INDEX, JobStore
from plateveil.schema import ConcealJob, JobRecord, JobStatus, iso_ms, new_job_id, utc_now
from plateveil_ops.stack import ORIGINALS_BUCKET, OUTPUT_BUCKET
from tests.conftest import LOCAL_KEY_ID  # the stack key owns these jobs: it reads their status

pytestmark = pytest.mark.integration


def _job(s3, car_jpeg, *, upload: bool = True, accepted_s_ago: float = 0.0) -> ConcealJob:
    job_id = new_job_id()
    key = f"reliability/{job_id}.jpg"
    if upload:
        s3.put_object(Bucket=ORIGINALS_BUCKET, Key=key, Body=car_jpeg, ContentType="image/jpeg")
    accepted = utc_now().timestamp() - accepted_s_ago
    from datetime import UTC, datetime

    return ConcealJob(job_id=job_id, source_bucket=ORIGINALS_BUCKET, source_key=key, output_bucket=OUTPUT_BUCKET,
                      output_key=f"concealed/reliability/{job_id}.jpg", style="blur",
                      accepted_at=iso_ms(datetime.fromtimestamp(accepted, UTC)), key_id=LOCAL_KEY_ID)


def _events_for(jobs: JobStore, job_id: str) -> list:
    return [e for _, e in jobs.read_events(count=1_000_000) if e.job_id == job_id]


def _outputs_for(s3, job_id: str) -> list[str]:
    listing = s3.list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix="concealed/reliability/")
    return [o["Key"] for o in listing.get("Contents", []) if job_id in o["Key"]]


def test_a_duplicate_delivery_is_skipped_with_one_output_and_one_event(tasks, s3, car_jpeg):
    ctx = tasks.get_context()
    job = _job(s3, car_jpeg)
    ctx.jobs.create(JobRecord.queued(job))
    first = tasks.run_job(job, ctx)
    modified = s3.head_object(Bucket=OUTPUT_BUCKET, Key=job.output_key)["LastModified"]
    second = tasks.run_job(job, ctx)  # the same message delivered again
    assert first.status is second.status is JobStatus.DONE
    assert second.attempts == first.attempts == 1 and second.completed_at == first.completed_at
    assert len(_events_for(ctx.jobs, job.job_id)) == 1
    assert sorted(_outputs_for(s3, job.job_id)) == [job.output_key, job.sidecar_key]
    assert s3.head_object(Bucket=OUTPUT_BUCKET, Key=job.output_key)["LastModified"] == modified
    assert ctx.jobs.client.zscore(OPEN_INDEX, job.job_id) is None


def test_only_the_first_end_of_a_job_is_recorded_and_announced(tasks, s3, car_jpeg):
    ctx = tasks.get_context()
    job = _job(s3, car_jpeg, upload=False)
    ctx.jobs.create(JobRecord.queued(job))
    done = ctx.jobs.finish(job.job_id, JobStatus.DONE, model="m@1", job=job)
    again = ctx.jobs.finish(job.job_id, JobStatus.FAILED, error="late duplicate", job=job)
    assert done.status is again.status is JobStatus.DONE and again.error is None
    assert [e.status for e in _events_for(ctx.jobs, job.job_id)] == [JobStatus.DONE]
    assert ctx.jobs.dead_letter(job.job_id) is None


def test_a_vanished_status_record_is_recreated_and_the_job_finishes(tasks, s3, car_jpeg, client, stack):
    ctx = tasks.get_context()
    job = _job(s3, car_jpeg)
    ctx.jobs.create(JobRecord.queued(job))
    ctx.jobs.client.delete(JobStore.key(job.job_id))  # TTL, eviction, a Redis that lost it
    record = tasks.run_job(job, ctx)
    assert record.status is JobStatus.DONE and record.source_key == job.source_key and record.attempts == 1
    assert client.status(job.job_id)["status"] == "done"
    assert len(_events_for(ctx.jobs, job.job_id)) == 1


def test_a_fragment_of_a_status_record_answers_404_not_500(tasks, stack):
    ctx = tasks.get_context()
    job_id = new_job_id()
    ctx.jobs.client.hset(JobStore.key(job_id), mapping={"status": "running", "attempts": "1"})
    assert ctx.jobs.get(job_id) is None
    resp = httpx.get(f"{stack.api_url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {stack.api_key}"})
    assert resp.status_code == 404, resp.text


def test_a_vanished_record_fails_with_its_reason_not_a_keyerror(tasks, stack):
    """The old failure mode: the record is gone and the photo is too -> failed with the reason."""
    ctx = tasks.get_context()
    job = _job(None, None, upload=False)
    result = tasks.conceal_photo.apply(args=[job.to_dict()]).get()
    record = ctx.jobs.get(job.job_id)
    assert result["status"] == "failed" and record.status is JobStatus.FAILED
    assert "does not exist" in record.error and "KeyError" not in record.error
    assert ctx.jobs.dead_letter(job.job_id).reason == record.error


def test_failed_jobs_are_dead_lettered_listed_shown_and_replayed(tasks, s3, car_jpeg, stack, capsys):
    from plateveil_ops.cli import main

    ctx = tasks.get_context()
    job = _job(s3, car_jpeg, upload=False)
    ctx.jobs.create(JobRecord.queued(job))
    assert tasks.conceal_photo.apply(args=[job.to_dict()]).get()["status"] == "failed"
    letter = ctx.jobs.dead_letter(job.job_id)
    assert "does not exist" in letter.reason and letter.job == job.to_dict() and letter.attempts == 1

    assert main(["dlq", "list"]) == 0
    assert job.job_id in capsys.readouterr().out
    assert main(["dlq", "show", job.job_id]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["reason"] == letter.reason and shown["record"]["status"] == "failed"
    assert main(["dlq", "show", "no-such-job"]) == 1

    s3.put_object(Bucket=ORIGINALS_BUCKET, Key=job.source_key, Body=car_jpeg, ContentType="image/jpeg")
    assert main(["dlq", "replay", job.job_id]) == 0  # the stack's worker takes it
    assert ctx.jobs.client.hget(DLQ_KEY, job.job_id) is None
    record = _wait_finished(ctx.jobs, job.job_id)
    assert record.status is JobStatus.DONE and record.attempts == 1 and record.error is None
    assert [e.status for e in _events_for(ctx.jobs, job.job_id)] == [JobStatus.FAILED, JobStatus.DONE]
    assert main(["dlq", "replay"]) == 2


def _wait_finished(jobs: JobStore, job_id: str, timeout: float = 60.0) -> JobRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = jobs.get(job_id)
        if record is not None and record.status.finished:
            return record
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} not finished after {timeout} s: {jobs.get(job_id)}")


def _reconciler(jobs: JobStore, stack, **kwargs):
    from workers.reconcile import Reconciler, make_sender

    return Reconciler(jobs, make_sender(stack.redis_url, "plateveil.conceal"), "plateveil.conceal", **kwargs)


def test_the_reconciler_requeues_an_accepted_job_the_queue_lost(tasks, s3, car_jpeg, stack):
    ctx = tasks.get_context()
    job = _job(s3, car_jpeg, accepted_s_ago=120)
    ctx.jobs.create(JobRecord.queued(job))  # accepted, but its message never made it (or Redis lost it)
    young = _job(s3, car_jpeg)
    ctx.jobs.create(JobRecord.queued(young))  # inside the grace period: left alone
    reconciler = _reconciler(ctx.jobs, stack, grace_s=60, confirm_s=0.2)
    try:
        report = reconciler.run_once()
    finally:
        reconciler.close()
    assert job.job_id in report.requeued and young.job_id not in report.requeued
    assert report.oldest_open_age_s >= 119
    record = _wait_finished(ctx.jobs, job.job_id)
    assert record.status is JobStatus.DONE and len(_events_for(ctx.jobs, job.job_id)) == 1
    ctx.jobs.forget_open(young.job_id)


def test_the_reconciler_fails_a_job_lost_too_often_and_drops_vanished_ones(tasks, s3, car_jpeg, stack):
    ctx = tasks.get_context()
    job = _job(s3, car_jpeg, accepted_s_ago=120)
    ctx.jobs.create(JobRecord.queued(job))
    for _ in range(2):
        ctx.jobs.mark_requeued(job.job_id, "lost before")
    ghost = new_job_id()
    ctx.jobs.client.zadd(OPEN_INDEX, {ghost: time.time() - 120})  # index entry, no record, no message
    reconciler = _reconciler(ctx.jobs, stack, grace_s=60, confirm_s=0, max_requeues=2)
    try:
        report = reconciler.run_once()
    finally:
        reconciler.close()
    assert job.job_id in report.failed and ghost in report.vanished
    record = ctx.jobs.get(job.job_id)
    assert record.status is JobStatus.FAILED and record.error.startswith("lost from the queue 3 times")
    assert ctx.jobs.dead_letter(job.job_id).reason == record.error
    assert ctx.jobs.client.zscore(OPEN_INDEX, ghost) is None


def test_cli_reconcile_reports(stack, capsys):
    from plateveil_ops.cli import main

    assert main(["reconcile", "--grace-s", "3600", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["requeued"] == [] and report["failed"] == []
