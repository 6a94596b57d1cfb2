"""The upload hand-off through Redis: the worker takes the original's bytes from Redis once, and reads S3
when there is no hand-off (or it is for another object)."""

from __future__ import annotations

import pytest

from plateveil.jobs import UPLOAD_PREFIX, JobStore
from plateveil.schema import ConcealJob, JobRecord
from plateveil.storage import ObjectInfo, StoredObject

pytestmark = pytest.mark.integration


def _job(job_id: str) -> ConcealJob:
    return ConcealJob(job_id=job_id, source_bucket="in", source_key=f"originals/{job_id}.jpg", output_bucket="out",
                      output_key=f"concealed/{job_id}.jpg", style="blur", accepted_at="2024-05-01T12:00:00.123Z")


def test_hand_off_is_taken_once_and_expires(stack, redis_client):
    jobs = JobStore.from_url(stack.redis_url)
    job = _job("handoff-1")
    data = bytes(range(256)) * 40  # binary, not text
    upload = StoredObject(ObjectInfo("in", job.source_key, len(data), "image/jpeg", "abc123"), data)
    jobs.create(JobRecord.queued(job), upload=upload, upload_ttl_s=30)
    assert 0 < redis_client.ttl(UPLOAD_PREFIX + job.job_id) <= 30
    assert jobs.get(job.job_id).queued_at is not None
    taken = jobs.take_upload(job.job_id, "in", job.source_key)
    assert taken == upload
    assert jobs.take_upload(job.job_id, "in", job.source_key) is None  # gone once taken
    assert not redis_client.exists(UPLOAD_PREFIX + job.job_id)


def test_hand_off_for_another_object_is_not_used(stack):
    jobs = JobStore.from_url(stack.redis_url)
    job = _job("handoff-2")
    upload = StoredObject(ObjectInfo("in", "originals/other.jpg", 3, "image/jpeg", "e"), b"abc")
    jobs.create(JobRecord.queued(job), upload=upload)
    assert jobs.take_upload(job.job_id, "in", job.source_key) is None
    assert jobs.take_upload("no-such-job", "in", "k") is None


def test_a_store_without_a_bytes_client_reads_s3(stack, redis_client):
    job = _job("handoff-3")
    upload = StoredObject(ObjectInfo("in", job.source_key, 3, "image/jpeg", "e"), b"abc")
    writer = JobStore.from_url(stack.redis_url)
    writer.create(JobRecord.queued(job), upload=upload)
    assert JobStore(redis_client).take_upload(job.job_id, "in", job.source_key) is None
    assert writer.take_upload(job.job_id, "in", job.source_key) == upload


def test_uploaded_photo_is_processed_from_the_hand_off(client, redis_client, car_jpeg):
    accepted = client.submit_photo(car_jpeg, style="solid")
    job = client.wait(accepted["job_id"], timeout=60)
    assert job["status"] == "done", job
    assert not redis_client.exists(UPLOAD_PREFIX + accepted["job_id"])  # taken by the worker
    assert job["queued_at"] >= job["accepted_at"] and job["started_at"] >= job["queued_at"]
    assert {"s3_get", "s3_put"} <= set(job["timings_ms"])
