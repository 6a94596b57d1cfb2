from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from plateveil.schema import (
    CompletionEvent,
    ConcealJob,
    JobRecord,
    JobStatus,
    dated_key,
    format_for,
    iso_ms,
    parse_iso,
    sidecar_key_for,
)


def _job() -> ConcealJob:
    return ConcealJob(job_id="j1", source_bucket="in", source_key="originals/2024/05/01/j1.jpg", output_bucket="out",
                      output_key="concealed/2024/05/01/j1.jpg", style="blur", accepted_at="2024-05-01T12:00:00.123Z",
                      metadata={"listing": "7"})


def test_job_round_trip():
    job = _job()
    assert ConcealJob.from_dict(job.to_dict()) == job
    assert job.sidecar_key == "concealed/2024/05/01/j1.jpg.json" == sidecar_key_for(job.output_key)


def test_record_round_trips_through_dict_and_redis_hash():
    record = JobRecord.queued(_job())
    assert record.status is JobStatus.QUEUED and record.plate_count == 0
    done = JobRecord.from_dict(record.to_dict() | {
        "status": "done", "model": "m@1", "plates": [{"polygon": [[0, 0], [1, 0], [1, 1], [0, 1]], "score": 0.9}],
        "timings_ms": {"total": 12.5}, "completed_at": "2024-05-01T12:00:01.000Z", "attempts": 1})
    assert JobRecord.from_dict(done.to_dict()) == done
    h = done.to_hash()
    assert all(isinstance(v, str) for v in h.values())
    assert JobRecord.from_hash(h) == done
    assert done.to_dict()["plate_count"] == 1


def test_empty_strings_in_the_hash_read_back_as_none():
    h = JobRecord.queued(_job()).to_hash() | {"error": "", "model": ""}
    record = JobRecord.from_hash(h)
    assert record.error is None and record.model is None


def test_event_round_trip():
    record = JobRecord.from_dict(JobRecord.queued(_job()).to_dict() | {"status": "failed", "error": "bad"})
    event = CompletionEvent.of(record)
    fields = event.to_fields()
    assert all(isinstance(v, str) for v in fields.values()) and fields["status"] == "failed"
    assert CompletionEvent.from_fields(fields) == event


def test_status_finished():
    assert [s.finished for s in JobStatus] == [False, False, True, True]
    with pytest.raises(ValueError):
        JobStatus("lost")


def test_iso_ms_is_utc_with_milliseconds():
    moment = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    text = iso_ms(moment)
    assert text == "2024-05-01T12:00:00.123Z"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", text)
    assert parse_iso(text) == moment.replace(microsecond=123000)


def test_keys_and_formats():
    moment = datetime(2024, 5, 1, tzinfo=UTC)
    assert dated_key("originals", "abc", "jpg", moment) == "originals/2024/05/01/abc.jpg"
    assert format_for("image/jpeg") == "jpeg"
    assert format_for("image/png; charset=x") == "png"
    assert format_for("application/octet-stream", "a/b.JPEG") == "jpeg"
    assert format_for(None, "a/b.txt") is None
