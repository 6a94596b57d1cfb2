"""Faults injected into a real local stack (its own, with short timeouts): real processes, real
signals. Every test counts every job it got accepted: accepted = done + failed-with-reason, each
finished job announced once, no job with more than one concealed photo.

The stack here runs with a 12 s visibility timeout swept every second and the reconciler every
second (grace 3 s), so a killed worker's job comes back within seconds instead of the
production 90-100 s; the settings are in FAULT_ENV.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from plateveil.jobs import JobStore
from plateveil.schema import ConcealJob, JobStatus, iso_ms, new_job_id, utc_now
from plateveil_ops.stack import ORIGINALS_BUCKET, OUTPUT_BUCKET, Stack
from producer.apikeys import derived_key_id

pytestmark = [pytest.mark.integration, pytest.mark.faults]

FAULT_ENV = {
    "PLATEVEIL_SOFT_TIME_LIMIT_S": "8",
    "PLATEVEIL_HARD_TIME_LIMIT_S": "10",
    "PLATEVEIL_RETRY_BACKOFF_S": "0.2",
    "PLATEVEIL_RETRY_BACKOFF_MAX_S": "1",
    "PLATEVEIL_VISIBILITY_TIMEOUT_S": "12",
    "PLATEVEIL_RESTORE_INTERVAL_S": "1",
    "PLATEVEIL_RETRY_WINDOW_S": "120",
    "PLATEVEIL_MAX_RETRIES": "500",
    "PLATEVEIL_RECONCILE_INTERVAL_S": "1",
    "PLATEVEIL_RECONCILE_GRACE_S": "3",
    "PLATEVEIL_RECONCILE_CONFIRM_S": "0.5",
    "PLATEVEIL_S3_MAX_ATTEMPTS": "1",
    "PLATEVEIL_S3_CONNECT_TIMEOUT_S": "1",
    "PLATEVEIL_S3_READ_TIMEOUT_S": "2",
    "PLATEVEIL_ENQUEUE_TIMEOUT_S": "1",
    "PLATEVEIL_HEALTH_TIMEOUT_S": "1",
    "PLATEVEIL_WEBHOOK_BACKOFF_MAX_S": "5",  # under the visibility timeout (a waiting retry is held unacked)
}
FINISH_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def fstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack(state_dir=tmp_path_factory.mktemp("fault-stack"), pool="solo", concurrency=1,
               extra_env=dict(FAULT_ENV)) as running:
        yield running


@pytest.fixture
def api(fstack: Stack) -> Iterator[Any]:
    from producer.client import PlateveilClient

    with PlateveilClient(fstack.api_url, fstack.api_key, timeout=30) as c:
        yield c


def _jobs(fstack: Stack) -> JobStore:
    return JobStore(fstack.redis_client())


def _submit(api: Any, photo: bytes, n: int) -> list[str]:
    return [api.submit_photo(photo)["job_id"] for _ in range(n)]


def _statuses(jobs: JobStore, ids: list[str]) -> dict[str, str | None]:
    pipe = jobs.client.pipeline()
    for job_id in ids:
        pipe.hget(JobStore.key(job_id), "status")
    return dict(zip(ids, pipe.execute(), strict=True))


def _wait_all_finished(fstack: Stack, ids: list[str], timeout: float = FINISH_TIMEOUT_S) -> dict[str, float]:
    """Poll until every job is done/failed; returns when each was first seen finished (monotonic)."""
    jobs = _jobs(fstack)
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            statuses = _statuses(jobs, [i for i in ids if i not in seen])
        except Exception:  # redis restarting
            time.sleep(0.2)
            continue
        now = time.monotonic()
        seen |= {i: now for i, st in statuses.items() if st in ("done", "failed")}
        if len(seen) == len(ids):
            return seen
        time.sleep(0.1)
    left = {i: _statuses(jobs, [i])[i] for i in ids if i not in seen}
    raise AssertionError(f"{len(left)} of {len(ids)} jobs not finished after {timeout:.0f} s: {left}\n"
                         + _worker_log_tail(fstack))


def _worker_log_tail(fstack: Stack, n: int = 40) -> str:
    lines = fstack._log("worker").read_text(errors="replace").splitlines()[-n:]
    return "--- worker log ---\n" + "\n".join(lines)


def _account(fstack: Stack, ids: list[str]) -> dict[str, Any]:
    """accepted, done, failed (with reasons), lost; events and concealed photos per job."""
    jobs = _jobs(fstack)
    records = {i: jobs.get(i) for i in ids}
    events = Counter(e.job_id for _, e in jobs.read_events(count=10_000_000))
    s3 = fstack.s3_client()
    images: Counter[str] = Counter()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=OUTPUT_BUCKET, Prefix="concealed/"):
        for obj in page.get("Contents", []):
            name = obj["Key"].rsplit("/", 1)[-1]
            if not name.endswith(".json"):
                images[name.split(".", 1)[0]] += 1
    done = [i for i, r in records.items() if r is not None and r.status is JobStatus.DONE]
    failed = {i: r.error for i, r in records.items() if r is not None and r.status is JobStatus.FAILED}
    return {
        "accepted": len(ids), "done": len(done), "failed": failed,
        "lost": [i for i in ids if i not in done and i not in failed],
        "events_not_one": {i: events[i] for i in ids if events[i] != 1},
        "images_not_one": {i: images[i] for i in done if images[i] != 1},
        "records": records,
    }


def _assert_nothing_lost_nothing_twice(acc: dict[str, Any], *, may_fail: bool = False) -> None:
    assert acc["lost"] == [], acc["lost"]
    assert acc["done"] + len(acc["failed"]) == acc["accepted"]
    assert all(acc["failed"].values()), f"failed without a reason: {acc['failed']}"
    if not may_fail:
        assert acc["failed"] == {}, acc["failed"]
    assert acc["events_not_one"] == {}, acc["events_not_one"]
    assert acc["images_not_one"] == {}, acc["images_not_one"]


def test_a_job_whose_worker_is_sigkilled_is_finished_by_a_fresh_worker(fstack, api, car_jpeg):
    jobs = _jobs(fstack)
    ids: list[str] = []
    victims: list[str] = []
    for _ in range(3):  # the kill must land mid-job; a job finishing in the same ms is retried
        batch = _submit(api, car_jpeg, 6)
        ids += batch
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "running" not in _statuses(jobs, batch).values():
            time.sleep(0.01)
        fstack.kill("worker", signal.SIGKILL)
        killed_at = time.monotonic()
        victims = [i for i, st in _statuses(jobs, ids).items() if st == "running"]
        fstack.start_service("worker")
        if victims:
            break
    assert victims, "no job was running at any of 3 kills"
    finished = _wait_all_finished(fstack, ids)
    acc = _account(fstack, ids)
    _assert_nothing_lost_nothing_twice(acc)
    for victim in victims:
        assert acc["records"][victim].attempts >= 2  # delivered again after the kill
    took = max(finished[v] for v in victims) - killed_at
    print(f"\nkilled worker's job finished {took:.1f} s after the SIGKILL (visibility timeout "
          f"{FAULT_ENV['PLATEVEIL_VISIBILITY_TIMEOUT_S']} s); {acc['accepted']} accepted, {acc['done']} done")
    assert took < 120


def test_redis_restarted_mid_stream_loses_nothing_and_the_api_answers_503_meanwhile(fstack, api, car_jpeg):
    ids = _submit(api, car_jpeg, 10)
    jobs = _jobs(fstack)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "done" not in _statuses(jobs, ids).values():
        time.sleep(0.05)
    fstack.stop_service("redis")  # SIGTERM: Redis writes its append-only file out and exits
    resp = httpx.post(f"{fstack.api_url}/v1/photos", content=car_jpeg, timeout=30,
                      headers={"Authorization": f"Bearer {fstack.api_key}", "Content-Type": "image/jpeg"})
    assert resp.status_code == 503, resp.text
    assert int(resp.headers["Retry-After"]) > 0
    time.sleep(3)
    fstack.start_service("redis")
    ids += _submit(api, car_jpeg, 4)  # accepted again once Redis is back
    _wait_all_finished(fstack, ids)
    _assert_nothing_lost_nothing_twice(_account(fstack, ids))


def test_an_s3_outage_ends_in_success_not_in_failed_jobs(fstack, api, car_jpeg):
    ids = _submit(api, car_jpeg, 8)
    fstack.kill("s3", signal.SIGSTOP)  # the S3 server stops answering (keeps its objects)
    try:
        time.sleep(10)
    finally:
        fstack.kill("s3", signal.SIGCONT)
    _wait_all_finished(fstack, ids)
    acc = _account(fstack, ids)
    _assert_nothing_lost_nothing_twice(acc)
    retried = [i for i, r in acc["records"].items() if r.attempts > 1]
    print(f"\nS3 outage 10 s: {acc['accepted']} accepted, {acc['done']} done, {len(retried)} retried")


def _sender(fstack: Stack) -> Any:
    from workers.reconcile import make_sender

    return make_sender(fstack.redis_url, "plateveil.conceal")


def _wait_log(fstack: Stack, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in fstack._log("worker").read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"worker log never said {text!r}\n" + _worker_log_tail(fstack))


def test_a_job_delivered_twice_has_one_output_and_one_event(fstack, api, car_jpeg):
    from workers.reconcile import send_job

    job_id = api.submit_photo(car_jpeg)["job_id"]
    _wait_all_finished(fstack, [job_id])
    record = _jobs(fstack).get(job_id)
    s3 = fstack.s3_client()
    modified = s3.head_object(Bucket=OUTPUT_BUCKET, Key=record.output_key)["LastModified"]
    sender = _sender(fstack)
    try:
        job = ConcealJob(job_id=job_id, source_bucket=record.source_bucket, source_key=record.source_key,
                         output_bucket=record.output_bucket, output_key=record.output_key, style=record.style,
                         accepted_at=record.accepted_at, metadata=record.metadata)
        send_job(sender, "plateveil.conceal", job)
        _wait_log(fstack, f"job {job_id} already done: duplicate delivery skipped")
    finally:
        sender.close()
    acc = _account(fstack, [job_id])
    _assert_nothing_lost_nothing_twice(acc)
    assert acc["records"][job_id].attempts == record.attempts
    assert s3.head_object(Bucket=OUTPUT_BUCKET, Key=record.output_key)["LastModified"] == modified


def test_a_lost_status_record_is_recreated_and_the_job_finishes(fstack, api, car_jpeg):
    from workers.reconcile import send_job

    job_id = new_job_id()
    s3 = fstack.s3_client()
    key = f"originals/faults/{job_id}.jpg"
    s3.put_object(Bucket=ORIGINALS_BUCKET, Key=key, Body=car_jpeg, ContentType="image/jpeg")
    job = ConcealJob(job_id=job_id, source_bucket=ORIGINALS_BUCKET, source_key=key, output_bucket=OUTPUT_BUCKET,
                     output_key=f"concealed/faults/{job_id}.jpg", style="blur", accepted_at=iso_ms(utc_now()),
                     key_id=derived_key_id(fstack.api_key))  # the stack's key owns it: it reads the status
    sender = _sender(fstack)
    try:
        send_job(sender, "plateveil.conceal", job)  # a message whose status record is gone
    finally:
        sender.close()
    _wait_all_finished(fstack, [job_id])
    _assert_nothing_lost_nothing_twice(_account(fstack, [job_id]))
    assert api.status(job_id)["status"] == "done"
    _jobs(fstack).client.delete(JobStore.key(job_id))  # expired after it finished: 404, not 500
    resp = httpx.get(f"{fstack.api_url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {fstack.api_key}"})
    assert resp.status_code == 404
