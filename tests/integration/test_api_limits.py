"""Who may read what, how often, and how much of the queue: the source allowlist, S3 event batches
(validated whole, bounded, deduplicated), per-key rate limits, failed-auth limits per client IP and
the per-key queue share. Over the real stack, or - where a test needs small limits - over an app
of its own (same code, real Redis and S3 of the stack, in-process through httpx's ASGI transport)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from plateveil_ops.stack import ORIGINALS_BUCKET, OUTPUT_BUCKET
from producer.client import PlateveilClient
from tests.conftest import MAX_EVENT_RECORDS, PARTNER_BUCKET, PARTNER_KEY
from tests.integration.own_app import own_app as _own_app
from tests.integration.own_app import run as _run

pytestmark = pytest.mark.integration

NOT_FOUND = {"detail": "no such object, or this API key may not read it"}


@pytest.fixture(scope="module")
def partner_objects(s3, car_jpeg) -> dict[str, str]:
    try:
        s3.create_bucket(Bucket=PARTNER_BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    s3.put_object(Bucket=PARTNER_BUCKET, Key="inbox/car.jpg", Body=car_jpeg, ContentType="image/jpeg")
    s3.put_object(Bucket=PARTNER_BUCKET, Key="hr/passport-scan.jpg", Body=car_jpeg, ContentType="image/jpeg")
    s3.put_object(Bucket=ORIGINALS_BUCKET, Key="team/car.jpg", Body=car_jpeg, ContentType="image/jpeg")
    s3.put_object(Bucket=ORIGINALS_BUCKET, Key="team/notes.txt", Body=b"hello", ContentType="text/plain")
    return {"allowed": "inbox/car.jpg", "secret": "hr/passport-scan.jpg"}


@pytest.fixture
def partner(stack):
    with PlateveilClient(stack.api_url, PARTNER_KEY) as c:
        yield c


def _event(bucket: str, key: str, etag: str | None = "abc123", name: str = "ObjectCreated:Put",
           sequencer: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": key}
    if etag:
        obj["eTag"] = etag
    if sequencer:
        obj["sequencer"] = sequencer
    return {"eventName": name, "s3": {"bucket": {"name": bucket}, "object": obj}}


def _job_count(redis_client) -> int:
    return sum(1 for _ in redis_client.scan_iter("plateveil:job:*", count=1000))


# -- source allowlist --------------------------------------------------------------------------


def test_a_key_reads_only_its_allowed_sources(partner, client, partner_objects, s3):
    ok = partner.submit_s3_object(PARTNER_BUCKET, partner_objects["allowed"])
    assert partner.wait(ok["job_id"])["status"] == "done"
    # another team's object exists but is not allowed: the same answer as a missing one
    denied = partner.http.post("/v1/jobs", json={"bucket": PARTNER_BUCKET, "key": partner_objects["secret"]})
    missing = partner.http.post("/v1/jobs", json={"bucket": PARTNER_BUCKET, "key": "inbox/nothing.jpg"})
    elsewhere = partner.http.post("/v1/jobs", json={"bucket": ORIGINALS_BUCKET, "key": "team/car.jpg"})
    assert denied.status_code == missing.status_code == elsewhere.status_code == 404
    assert denied.json() == missing.json() == elsewhere.json() == NOT_FOUND
    # and the local key may not read the partner's bucket at all
    assert client.http.post("/v1/jobs", json={"bucket": PARTNER_BUCKET, "key": "inbox/car.jpg"}).json() == NOT_FOUND
    # nothing of the secret object reached the output bucket
    listed = s3.list_objects_v2(Bucket=OUTPUT_BUCKET).get("Contents", [])
    bodies = [s3.get_object(Bucket=OUTPUT_BUCKET, Key=o["Key"])["Body"].read() for o in listed
              if o["Key"].endswith(".json")]
    assert not any(b"passport" in body for body in bodies)


def test_s3_events_outside_the_allowlist_are_skipped_as_not_found(partner, partner_objects):
    resp = partner.http.post("/v1/s3-events", json={"Records": [
        _event(PARTNER_BUCKET, partner_objects["secret"], etag="s1"),
        _event(ORIGINALS_BUCKET, "team/car.jpg", etag="s2")]})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["accepted"] == [] and body["duplicates"] == []
    assert [s["reason"] for s in body["skipped"]] == [NOT_FOUND["detail"]] * 2


# -- S3 events -----------------------------------------------------------------------------------


def _fresh_photo(s3, car_jpeg: bytes, prefix: str = "team/") -> str:
    """A new object in the originals bucket (outside the uploads prefix): a version no test claimed."""
    key = f"{prefix}car-{secrets.token_hex(4)}.jpg"
    s3.put_object(Bucket=ORIGINALS_BUCKET, Key=key, Body=car_jpeg, ContentType="image/jpeg")
    return key


def test_a_retried_notification_makes_no_second_job(client, partner_objects, redis_client, s3, car_jpeg):
    key = _fresh_photo(s3, car_jpeg)
    event = {"Records": [_event(ORIGINALS_BUCKET, key, etag=secrets.token_hex(8))]}
    first = client.http.post("/v1/s3-events", json=event).json()
    assert len(first["accepted"]) == 1 and first["duplicates"] == []
    before = _job_count(redis_client)
    # the sender retries twice (say its first answer timed out), once claiming another ETag and a
    # versionId: the HEAD decides what version the object is, not the sender
    lying = {"Records": [_event(ORIGINALS_BUCKET, key, etag=secrets.token_hex(8)) |
                         {"s3": {"bucket": {"name": ORIGINALS_BUCKET},
                                 "object": {"key": key, "eTag": "x", "versionId": secrets.token_hex(8)}}}]}
    for again_event in (event, lying):
        again = client.http.post("/v1/s3-events", json=again_event)
        assert again.status_code == 202
        assert again.json()["accepted"] == []
        assert [d["key"] for d in again.json()["duplicates"]] == [key]
        assert again.json()["duplicates"][0]["reason"] == f"duplicate delivery of job {first['accepted'][0]['job_id']}"
    assert _job_count(redis_client) == before
    # a new version of the object (written again with other bytes: a new ETag) is a new job
    s3.put_object(Bucket=ORIGINALS_BUCKET, Key=key, Body=car_jpeg + b"\0", ContentType="image/jpeg")
    assert len(client.http.post("/v1/s3-events", json=event).json()["accepted"]) == 1
    assert client.http.post("/v1/s3-events", json=event).json()["accepted"] == []
    assert client.wait(first["accepted"][0]["job_id"])["status"] == "done"


def test_duplicates_within_one_batch_make_one_job(client, partner_objects, s3, car_jpeg):
    key = _fresh_photo(s3, car_jpeg)
    body = client.http.post("/v1/s3-events", json={"Records": [
        _event(ORIGINALS_BUCKET, key, etag=secrets.token_hex(8)) for _ in range(3)]}).json()
    assert len(body["accepted"]) == 1 and len(body["duplicates"]) == 2


@pytest.mark.parametrize("count", [MAX_EVENT_RECORDS + 1, 1000])
def test_too_many_records_is_413_and_nothing_is_enqueued(client, partner_objects, redis_client, count):
    before = _job_count(redis_client)
    records = [_event(ORIGINALS_BUCKET, "team/car.jpg", etag=f"e{n}") for n in range(count)]
    resp = client.http.post("/v1/s3-events", json={"Records": records})
    # 1000 records do not fit in the 64 KiB JSON limit (413 from the guard); 51 do (413 from the route)
    assert resp.status_code == 413, resp.text
    assert _job_count(redis_client) == before


def test_one_bad_record_refuses_the_whole_batch(client, partner_objects, redis_client, s3, car_jpeg):
    before = _job_count(redis_client)
    good = [_event(ORIGINALS_BUCKET, _fresh_photo(s3, car_jpeg), etag=secrets.token_hex(8)) for _ in range(3)]
    for bad in ({"eventName": "ObjectCreated:Put", "s3": {"bucket": {}}},
                _event("UPPER_case!!", "x.jpg"), _event(ORIGINALS_BUCKET, "a/../b.jpg"), "not a record"):
        resp = client.http.post("/v1/s3-events", json={"Records": good + [bad]})
        assert resp.status_code == 422, resp.text
        assert resp.json()["detail"].startswith("record 3:")
    assert _job_count(redis_client) == before
    # the same good records sent alone are accepted (nothing was remembered from the refusals)
    assert len(client.http.post("/v1/s3-events", json={"Records": good}).json()["accepted"]) == 3


def test_non_image_and_missing_objects_are_skipped_with_a_reason(client, partner_objects):
    body = client.http.post("/v1/s3-events", json={"Records": [
        _event(ORIGINALS_BUCKET, "team/notes.txt", etag="n1"),
        _event(ORIGINALS_BUCKET, "team/missing.jpg", etag="n2")]}).json()
    reasons = {s["key"]: s["reason"] for s in body["skipped"]}
    assert reasons == {"team/notes.txt": "not a supported image by content type or extension",
                       "team/missing.jpg": NOT_FOUND["detail"]}


# -- limits on an app of their own ---------------------------------------------------------------


def test_per_key_rate_limit_is_429_with_retry_after(stack):
    app, keys = _own_app(stack, rate_per_s=0.2, rate_burst=3)
    (a, key_a), (b, key_b) = keys.items()

    async def body(http: httpx.AsyncClient) -> list[httpx.Response]:
        out = [await http.get("/v1/jobs/" + "0" * 32, headers={"Authorization": f"Bearer {key_a}"}) for _ in range(5)]
        out.append(await http.get("/v1/jobs/" + "0" * 32, headers={"Authorization": f"Bearer {key_b}"}))
        return out

    answers = _run(app, body)
    assert [r.status_code for r in answers] == [404, 404, 404, 429, 429, 404]
    assert int(answers[3].headers["Retry-After"]) >= 1
    assert "rate limit of this key" in answers[3].json()["detail"]


def test_failed_authentication_is_limited_per_client_ip(stack):
    app, keys = _own_app(stack, auth_fail_per_s=0.1, auth_fail_burst=3)
    good = next(iter(keys.values()))
    ip = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250)}"

    async def body(http: httpx.AsyncClient) -> list[httpx.Response]:
        out = [await http.post("/v1/jobs", json={}, headers={"Authorization": f"Bearer guess{n}"}) for n in range(5)]
        out.append(await http.get("/v1/jobs/" + "0" * 32, headers={"Authorization": f"Bearer {good}"}))
        return out

    answers = _run(app, body, client_ip=ip)
    assert [r.status_code for r in answers] == [401, 401, 401, 429, 429, 404]
    assert int(answers[3].headers["Retry-After"]) >= 1
    # another address is not affected
    assert _run(app, lambda http: http.get("/v1/jobs/x"), client_ip="10.255.0.1").status_code == 401


def test_a_key_over_its_queue_share_gets_429_and_others_do_not(stack, car_jpeg, redis_client):
    # a queue no worker reads: the jobs stay queued, so the share stays taken
    queue = f"plateveil.test-share-{secrets.token_hex(3)}"
    app, keys = _own_app(stack, key_max_inflight=2, queue_retry_after_s=7, queue=queue)
    (a, key_a), (b, key_b) = keys.items()

    def upload(key: str) -> Callable[[httpx.AsyncClient], Any]:
        return lambda http: http.post("/v1/photos", files={"file": ("a.jpg", car_jpeg)},
                                      headers={"Authorization": f"Bearer {key}"})

    first = [_run(app, upload(key_a)) for _ in range(2)]
    assert [r.status_code for r in first] == [202, 202]
    full = _run(app, upload(key_a))
    assert full.status_code == 429 and full.headers["Retry-After"] == "7"
    assert "share of the queue" in full.json()["detail"]
    assert _run(app, upload(key_b)).status_code == 202  # another client is not starved
    # a finished job frees its slot
    redis_client.hset("plateveil:job:" + first[0].json()["job_id"], "status", "done")
    assert _run(app, upload(key_a)).status_code == 202
    assert _run(app, upload(key_a)).status_code == 429
    # and so does a job admitted longer ago than key_inflight_max_age_s (lost by a crashed worker)
    zkey = "plateveil:inflight:" + a
    stuck = first[1].json()["job_id"]
    redis_client.zadd(zkey, {stuck: redis_client.zscore(zkey, stuck) - 7200})
    assert _run(app, upload(key_a)).status_code == 202
    redis_client.delete(queue)


def test_s3_down_refuses_the_whole_batch_with_503_and_no_address(stack, redis_client):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    dead_app, keys = _own_app(stack, s3_endpoint_url=f"http://127.0.0.1:{dead_port}")
    key = next(iter(keys.values()))
    before = _job_count(redis_client)
    event = {"Records": [_event(ORIGINALS_BUCKET, f"team/car{n}.jpg", etag=secrets.token_hex(4)) for n in range(3)]}
    resp = _run(dead_app, lambda http: http.post("/v1/s3-events", json=event,
                                                 headers={"Authorization": f"Bearer {key}"}))
    assert resp.status_code == 503 and resp.headers["Retry-After"], resp.text
    assert resp.json() == {"detail": "storage temporarily unavailable; retry later"}
    assert str(dead_port) not in resp.text
    health = _run(dead_app, lambda http: http.get("/healthz", headers={"Authorization": f"Bearer {key}"}))
    assert health.status_code == 503 and health.json()["status"] == "down"
    assert health.json()["checks"]["s3"].startswith("down") and str(dead_port) not in health.text
    assert _run(dead_app, lambda http: http.get("/healthz")).json() == {"status": "down"}
    assert _job_count(redis_client) == before


def test_the_client_waits_out_a_429_and_retries(stack, car_jpeg):
    """PlateveilClient honours Retry-After on 429: with a burst of 1 and 2 requests/s, an upload and
    then a status call; the status call is refused once, waited out, and answered."""
    import threading

    import uvicorn

    from plateveil_ops.stack import free_port

    queue = f"plateveil.test-client-{secrets.token_hex(3)}"
    app, keys = _own_app(stack, rate_per_s=2.0, rate_burst=1, queue=queue)
    key = next(iter(keys.values()))
    statuses: list[int] = []

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        async def tracked(message: Any) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
            await send(message)
        await app(scope, receive, tracked)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(counting, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            thread.join(0.05)
        with PlateveilClient(f"http://127.0.0.1:{port}", key) as client:
            job = client.submit_photo(car_jpeg)
            assert client.status(job["job_id"])["status"] == "queued"
    finally:
        server.should_exit = True
        thread.join(10)
    assert statuses[0] == 202 and statuses[-1] == 200 and 429 in statuses
    redis_client = stack.redis_client()
    redis_client.delete(queue)


def test_minio_deliveries_apply_the_key_sources_and_name_checks(partner, partner_objects):
    """The MinIO webhook endpoint (producer/intake) uses the calling key's sources, and a malformed
    bucket name is skipped with the reason, never a 503 from botocore."""
    resp = partner.http.post("/v1/events/minio", json={"EventName": "s3:ObjectCreated:Put", "Records": [
        _event(PARTNER_BUCKET, partner_objects["secret"], etag=secrets.token_hex(4), name="s3:ObjectCreated:Put"),
        _event("UPPER_case!!", "x.jpg", etag="u1", name="s3:ObjectCreated:Put"),
        _event(PARTNER_BUCKET, partner_objects["allowed"], etag=secrets.token_hex(4), name="s3:ObjectCreated:Put")]})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    reasons = [s["reason"] for s in body["skipped"]]
    assert reasons[0] == NOT_FOUND["detail"] and reasons[1].startswith("invalid bucket name")
    assert [a["source_key"] for a in body["accepted"]] == [partner_objects["allowed"]]
    assert partner.wait(body["accepted"][0]["job_id"])["status"] == "done"
