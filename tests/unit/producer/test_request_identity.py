"""The upload service's request context: request ids, key ids, JSON log lines from start-up on."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from producer.apikeys import hash_key
from producer.app import create_app
from producer.identity import bearer_token, key_id_for
from producer.settings import ProducerSettings


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_key_ids_name_keys_without_revealing_them():
    kid = key_id_for("s3cret-key")
    assert kid.startswith("k-") and len(kid) == 14 and "s3cret" not in kid
    assert kid == key_id_for("s3cret-key") != key_id_for("other-key")
    assert bearer_token({"headers": [(b"authorization", b"Bearer abc")]}) == "abc"
    assert bearer_token({"headers": [(b"authorization", b"Basic abc")]}) is None


def test_json_logs_from_start_up_and_request_ids_on_every_answer(restore_root, capsys):
    # no Redis or S3 behind these URLs: nothing here needs them
    settings = ProducerSettings(redis_url="redis://127.0.0.1:1/0", api_key_hashes=f"k1:{hash_key('k1')}",
                                log_format="json",
                                s3_endpoint_url="http://127.0.0.1:1", s3_max_attempts=1)
    with TestClient(create_app(settings)) as client:
        live = client.get("/livez", headers={"X-Request-ID": "abc-123"})
        denied = client.get("/v1/jobs/x", headers={"Authorization": "Bearer nope"})
    assert live.headers["x-request-id"] == "abc-123"
    assert denied.status_code == 401 and len(denied.headers["x-request-id"]) == 32
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    ready = next(line for line in lines if line["message"].startswith("upload service ready"))
    assert ready["logger"] == "producer.app" and ready["level"] == "INFO" and ready["time"].endswith("+00:00")
