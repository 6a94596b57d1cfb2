"""The completion event's JSON schema accepts what CompletionEvent writes and refuses what it never does."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from plateveil.schema import CompletionEvent, JobStatus

SCHEMA = json.loads((Path(__file__).resolve().parents[3] / "docs" / "schemas" / "completion-event.v1.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def _done() -> dict[str, str]:
    return CompletionEvent(job_id="0" * 32, status=JobStatus.DONE, output_bucket="out", output_key="c/1.jpg",
                           sidecar_key="c/1.jpg.json", model="plateveil-plates@1.10.0", plate_count=2,
                           completed_at="2024-05-01T12:00:00.123Z").to_fields()


def test_the_schema_is_valid_and_takes_a_done_and_a_failed_event():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    VALIDATOR.validate(_done())
    failed = CompletionEvent(job_id="a" * 32, status=JobStatus.FAILED, output_bucket="out", output_key="c/1.jpg",
                             sidecar_key="c/1.jpg.json", error="not an image",
                             completed_at="2024-05-01T12:00:00.123Z").to_fields()
    VALIDATOR.validate(failed)
    VALIDATOR.validate(_done() | {"a_later_field": "x"})  # additive changes stay version 1


@pytest.mark.parametrize("change", [
    {"status": "running"}, {"plate_count": "2.0"}, {"completed_at": "2024-05-01 12:00:00"},
    {"model": ""}, {"error": "done but with an error"}, {"job_id": "not-hex"},
])
def test_the_schema_refuses_what_the_worker_never_writes(change):
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(_done() | change)


def test_the_schema_requires_every_v1_field():
    for name in _done():
        with pytest.raises(jsonschema.ValidationError):
            VALIDATOR.validate({k: v for k, v in _done().items() if k != name})
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(_done() | {"plate_count": 2})  # stream values are strings
