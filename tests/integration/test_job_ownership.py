"""Issue 36, finding 3: a job belongs to the key that made it. Key B gets the same 404 as for an
unknown job on key A's job status and flag, and the same 404 as for a missing object when it
re-runs A's original (or A's concealed photo) through ``POST /v1/jobs`` - even where both keys may
read the whole originals bucket. Over an app of its own on the session stack (its worker does the
jobs), two keys."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from plateveil.jobs import JobStore
from plateveil_ops.stack import ORIGINALS_BUCKET, OUTPUT_BUCKET
from producer.review.index import ReviewIndex
from tests.integration.own_app import own_app, run

pytestmark = pytest.mark.integration

NOT_FOUND = {"detail": "no such object, or this API key may not read it"}


async def _wait_done(http: httpx.AsyncClient, job_id: str, auth: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        view = (await http.get(f"/v1/jobs/{job_id}", headers=auth)).json()
        if view.get("status") in ("done", "failed"):
            return view
        await asyncio.sleep(0.2)
    raise AssertionError(f"job {job_id} not finished")


@pytest.mark.parametrize("shared_bucket", [True, False], ids=["both-keys-read-the-bucket", "default-sources"])
def test_key_b_gets_404_on_key_a_job_status_flag_and_rerun(stack, car_jpeg, shared_bucket):
    overrides: dict[str, Any] = {"rate_per_s": 1000, "rate_burst": 1000}
    if shared_bucket:  # every key may read both buckets: ownership still holds
        overrides["source_allow"] = {"*": (ORIGINALS_BUCKET + "/", OUTPUT_BUCKET + "/")}
    else:
        overrides["source_allow"] = {}  # the default: its own uploads
    app, keys = own_app(stack, **overrides)
    (a, key_a), (b, key_b) = keys.items()
    auth_a, auth_b = {"Authorization": f"Bearer {key_a}"}, {"Authorization": f"Bearer {key_b}"}

    async def body(http: httpx.AsyncClient) -> dict[str, Any]:
        up = await http.post("/v1/photos", files={"file": ("a.jpg", car_jpeg)}, headers=auth_a)
        assert up.status_code == 202, up.text
        job = up.json()
        done = await _wait_done(http, job["job_id"], auth_a)
        assert done["status"] == "done", done
        out: dict[str, Any] = {"job": job, "unknown": await http.get("/v1/jobs/" + "0" * 32, headers=auth_b)}
        out["status_b"] = await http.get(f"/v1/jobs/{job['job_id']}", headers=auth_b)
        out["flag_b"] = await http.post(f"/v1/jobs/{job['job_id']}/flag", json={"reason": "mine now"}, headers=auth_b)
        out["rerun_b"] = await http.post("/v1/jobs", json={"bucket": ORIGINALS_BUCKET, "key": job["source_key"]},
                                         headers=auth_b)
        out["output_b"] = await http.post("/v1/jobs", json={"bucket": OUTPUT_BUCKET, "key": job["output_key"]},
                                          headers=auth_b)
        out["s3_event_b"] = await http.post("/v1/s3-events", headers=auth_b, json={"Records": [
            {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": ORIGINALS_BUCKET},
                                                      "object": {"key": job["source_key"]}}}]})
        # and the owner still can
        out["status_a"] = await http.get(f"/v1/jobs/{job['job_id']}", headers=auth_a)
        out["flag_a"] = await http.post(f"/v1/jobs/{job['job_id']}/flag", json={"reason": "plate visible"},
                                        headers=auth_a)
        out["rerun_a"] = await http.post("/v1/jobs", json={"bucket": ORIGINALS_BUCKET, "key": job["source_key"]},
                                         headers=auth_a)
        return out

    out = run(app, body)
    job_id = out["job"]["job_id"]
    assert out["status_b"].status_code == 404
    assert out["status_b"].json() == {"detail": f"no job {job_id!r}"}  # as for an id that does not exist
    assert out["unknown"].status_code == 404
    assert out["flag_b"].status_code == 404 and out["flag_b"].json() == {"detail": f"no job {job_id!r}"}
    assert out["rerun_b"].status_code == 404 and out["rerun_b"].json() == NOT_FOUND
    assert out["output_b"].status_code == 404 and out["output_b"].json() == NOT_FOUND
    assert out["s3_event_b"].status_code == 202 and out["s3_event_b"].json()["accepted"] == []
    assert out["s3_event_b"].json()["skipped"][0]["reason"] == NOT_FOUND["detail"]
    assert out["status_a"].status_code == 200 and out["status_a"].json()["job_id"] == job_id
    assert out["flag_a"].status_code == 202, out["flag_a"].text
    # the flag has served its purpose: off the review queue, as a reviewer's accept does (the review
    # tests share this Redis and count the flagged jobs)
    ReviewIndex(JobStore.from_url(stack.redis_url), 90).mark_reviewed(job_id, by="test_job_ownership")
    assert out["rerun_a"].status_code == 202, out["rerun_a"].text
    redis = stack.redis_client()
    assert redis.hget(f"plateveil:job:{out['rerun_a'].json()['job_id']}", "key_id") == a
    assert b not in {redis.hget(f"plateveil:job:{job_id}", "key_id")}
