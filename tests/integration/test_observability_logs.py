"""Jobs carry the submitting key's id into the job record and the worker's log lines."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from producer.identity import key_id_for

pytestmark = pytest.mark.integration


def test_key_id_and_job_id_reach_the_record_and_the_worker_log(stack, client, redis_client, car_jpeg):
    resp = client.http.post("/v1/photos", files={"file": ("car.jpg", car_jpeg, "image/jpeg")},
                            headers={"X-Request-ID": "req-42"})
    assert resp.status_code == 202, resp.text
    assert resp.headers["x-request-id"] == "req-42"
    job_id = resp.json()["job_id"]
    assert client.wait(job_id, timeout=60)["status"] == "done"
    key_id = key_id_for(stack.api_key)
    assert redis_client.hget(f"plateveil:job:{job_id}", "key_id") == key_id
    log = Path(stack.services[[s.name for s in stack.services].index("worker")].log)
    deadline = time.monotonic() + 5
    while True:
        done = [line for line in log.read_text(errors="replace").splitlines() if f"job {job_id} done" in line]
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(done) == 1
    assert done[0].endswith(f"[job_id={job_id} key_id={key_id}]")
    assert "detect=" in done[0] and "total=" in done[0]


def test_a_new_request_id_is_made_when_none_or_a_bad_one_is_sent(stack, client):
    first = client.http.get("/v1/jobs/nope")
    second = client.http.get("/v1/jobs/nope", headers={"X-Request-ID": "bad id with spaces"})
    assert first.status_code == second.status_code == 404
    ids = {first.headers["x-request-id"], second.headers["x-request-id"]}
    assert len(ids) == 2 and all(len(i) == 32 for i in ids)
