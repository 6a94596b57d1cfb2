"""Who owns a job and whose uploads a key may read (producer/ownership.py), on plain values."""

from __future__ import annotations

from plateveil.schema import ConcealJob, JobRecord
from plateveil.storage.base import ObjectInfo
from producer.apikeys import hash_key
from producer.ownership import may_read_object, owns
from producer.settings import ProducerSettings

SETTINGS = ProducerSettings(redis_url="redis://127.0.0.1:1/0", api_key_hashes=f"a:{hash_key('x' * 20)}")


def _record(key_id: str) -> JobRecord:
    job = ConcealJob(job_id="j1", source_bucket="b", source_key="k.jpg", output_bucket="o", output_key="o.jpg",
                     style="blur", accepted_at="2026-01-01T00:00:00.000Z", key_id=key_id)
    return JobRecord.queued(job)


def test_a_job_belongs_to_its_key_only():
    assert owns(_record("a"), "a")
    assert not owns(_record("a"), "b")
    assert not owns(_record(""), "")  # made before jobs had owners: nobody's
    assert not owns(None, "a")


def test_an_upload_is_readable_by_its_uploader_only():
    upload = ObjectInfo(SETTINGS.originals_bucket, "originals/2026/01/01/j1.jpg", 10, "image/jpeg", "e",
                        {"api-key-id": "a"})
    assert may_read_object(SETTINGS, "a", upload)
    assert not may_read_object(SETTINGS, "b", upload)
    unlabelled = ObjectInfo(SETTINGS.originals_bucket, "originals/x.jpg", 10, "image/jpeg", "e", {})
    assert not may_read_object(SETTINGS, "a", unlabelled) and not may_read_object(SETTINGS, "", unlabelled)
    elsewhere = ObjectInfo(SETTINGS.originals_bucket, "incoming/x.jpg", 10, "image/jpeg", "e", {})
    assert may_read_object(SETTINGS, "b", elsewhere)  # the allowlist decides there
    output = ObjectInfo(SETTINGS.output_bucket, "concealed/x.jpg", 10, "image/jpeg", "e", {"api-key-id": "a"})
    assert not may_read_object(SETTINGS, "a", output)  # concealed photos are never a source


def test_default_sources_are_the_uploads_prefix():
    assert SETTINGS.sources_for("anyone") == ((SETTINGS.originals_bucket, "originals/"),)
    assert SETTINGS.sns_key_id == "sns" and SETTINGS.sqs_key_id == "sqs"
