"""Every kind of bad input in the generated corpus (tests/integration/hostile_corpus.py, 49 kinds)
goes through the real API and worker: each gets its answer (never a 5xx), no accepted job hangs,
job errors name no internal address or object, and the next good photo still succeeds."""

from __future__ import annotations

import re

import httpx
import pytest

from plateveil_ops.stack import OUTPUT_BUCKET
from tests.conftest import MAX_UPLOAD_BYTES
from tests.integration.hostile_corpus import cases, review_cases

pytestmark = pytest.mark.integration

CASES = cases(MAX_UPLOAD_BYTES)


def test_the_corpus_has_at_least_25_kinds():
    assert len({c.name for c in CASES}) == len(CASES) >= 25


def test_every_bad_input_gets_its_answer_and_the_next_good_photo_succeeds(stack, client, s3, car_jpeg):
    accepted = []
    for case in CASES:
        resp = case.send(client.http, stack.api_url)
        assert resp.status_code < 500, (case.name, resp.status_code, resp.text[:300])
        assert resp.status_code == case.status, (case.name, resp.status_code, resp.text[:300])
        if case.status != 202:
            detail = resp.json()["detail"]
            text = detail if isinstance(detail, str) else str(detail)
            assert case.reason.lower() in text.lower(), (case.name, text[:300])
            assert " at 0x" not in text and "127.0.0.1" not in text, (case.name, text[:300])
        elif case.job is None:  # an event: answered, no job made
            assert case.check_answer is not None and case.check_answer(resp.json()), (case.name, resp.text[:300])
        else:
            accepted.append((case, resp.json()))
    good = client.submit_photo(car_jpeg)
    for case, job in accepted:
        final = client.wait(job["job_id"], timeout=60)  # raises if it hangs
        assert final["status"] == case.job, (case.name, final)
        if case.job == "failed":
            assert case.reason.lower() in (final["error"] or "").lower(), (case.name, final["error"])
            assert final["attempts"] == 1, (case.name, final)  # permanent: not retried
            for leak in (" at 0x", "127.0.0.1", str(stack.ports["s3"]), str(stack.ports["redis"])):
                assert leak not in final["error"], (case.name, final["error"])
        if case.check_output is not None:
            out = s3.get_object(Bucket=OUTPUT_BUCKET, Key=job["output_key"])["Body"].read()
            assert case.check_output(out), case.name
    assert client.wait(good["job_id"], timeout=60)["status"] == "done"


def test_every_bad_input_to_the_review_pages_gets_its_answer_and_changes_nothing(stack, client, s3, car_jpeg):
    """The review routes' corpus (hostile_corpus.review_cases): logins, cookies, CSRF, corrections, pages
    and flags; never a 5xx, each its status and reason; the job is unchanged and the reviewer still works."""
    from plateveil_ops.stack import REVIEWER

    job = client.wait(client.submit_photo(car_jpeg)["job_id"], timeout=60)
    assert job["status"] == "done", job
    before = s3.get_object(Bucket=OUTPUT_BUCKET, Key=job["sidecar_key"])["Body"].read()
    review_cases_ = review_cases(job["job_id"], stack.api_key)
    assert len({c.name for c in review_cases_}) == len(review_cases_) >= 30
    with httpx.Client(base_url=stack.api_url, timeout=60) as http:
        login = http.post("/review/login", data={"name": REVIEWER, "key": stack.review_key})
        assert login.status_code == 303, login.text
        page = http.get("/review", headers={"Accept": "text/html"})
        http.headers["X-CSRF-Token"] = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page.text).group(1)
        wrong = []
        for case in review_cases_:
            resp = case.send(http, stack.api_url)
            leaks = [leak for leak in (" at 0x", "Traceback", str(stack.ports["s3"]), str(stack.ports["redis"]))
                     if leak in resp.text]
            if resp.status_code != case.status or case.reason.lower() not in resp.text.lower() or leaks:
                wrong.append((case.name, resp.status_code, resp.text[:200]))
        assert wrong == []   # every case listed with what it got: status, then the start of the answer
        assert http.get("/review", headers={"Accept": "text/html"}).status_code == 200   # still logged in
        assert http.get(f"/review/jobs/{job['job_id']}", headers={"Accept": "text/html"}).status_code == 200
    assert s3.get_object(Bucket=OUTPUT_BUCKET, Key=job["sidecar_key"])["Body"].read() == before
