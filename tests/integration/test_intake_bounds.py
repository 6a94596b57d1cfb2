"""Issue 36, finding 1: every intake path (``/v1/s3-events``, ``/v1/events/minio``, SNS, SQS) goes
through one function and is bounded by the record cap, the sender's queue share and rate, its
sources and the prefix/suffix filters, and makes one job per object version *as S3 reports it*.
Each test reproduces a probe of the issue on an app of its own (small limits, real Redis and moto
S3 of the session stack, S3 HEADs counted) and shows it bounded."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import httpx
import pytest

from plateveil_ops.stack import ORIGINALS_BUCKET
from tests.integration.own_app import own_app, run

pytestmark = pytest.mark.integration


def _records(bucket: str, keys: list[str], minio: bool = True, version: str | None = None) -> list[dict[str, Any]]:
    out = []
    for n, key in enumerate(keys):
        obj: dict[str, Any] = {"key": key, "eTag": f"sender-{n}"}
        if version is not None:
            obj["versionId"] = version
        out.append({"eventName": ("s3:" if minio else "") + "ObjectCreated:Put",
                    "s3": {"bucket": {"name": bucket}, "object": obj}})
    return out


def _minio(bucket: str, keys: list[str], version: str | None = None) -> dict[str, Any]:
    return {"EventName": "s3:ObjectCreated:Put", "Key": f"{bucket}/{keys[0]}",
            "Records": _records(bucket, keys, version=version)}


@pytest.fixture
def photos(s3, car_jpeg) -> list[str]:
    """40 new photos (outside the uploads prefix; versions no test claimed), so every HEAD finds an image."""
    prefix = f"flood-{secrets.token_hex(3)}/"
    keys = [f"{prefix}{n:03d}.jpg" for n in range(40)]
    for key in keys:
        s3.put_object(Bucket=ORIGINALS_BUCKET, Key=key, Body=car_jpeg, ContentType="image/jpeg")
    return keys


def _queue() -> str:
    return f"plateveil.test-intake-{secrets.token_hex(3)}"  # no worker reads it: queued jobs keep their slot


def test_a_minio_flood_is_bounded_by_the_cap_and_the_share(stack, photos, car_jpeg, redis_client):
    """Was: one MinIO request with 120 records made 120 jobs (share 50), HEADing every record."""
    queue = _queue()
    app, keys = own_app(stack, key_max_inflight=5, max_event_records=20, queue=queue, rate_per_s=1000,
                        rate_burst=1000)
    (a, key_a), (b, key_b) = keys.items()
    heads = [0]

    async def body(http: httpx.AsyncClient) -> dict[str, Any]:
        auth_a = {"Authorization": f"Bearer {key_a}"}
        out: dict[str, Any] = {}
        over = _minio(ORIGINALS_BUCKET, [photos[n % len(photos)] for n in range(120)])
        out["over_cap"] = await http.post("/v1/events/minio", json=over, headers=auth_a)
        out["over_cap_heads"] = heads[0]
        out["flood"] = await http.post("/v1/events/minio", json=_minio(ORIGINALS_BUCKET, photos[:20]), headers=auth_a)
        out["flood_heads"] = heads[0] - out["over_cap_heads"]
        before = heads[0]
        out["again"] = await http.post("/v1/s3-events", json={"Records": _records(ORIGINALS_BUCKET, photos[20:40],
                                                                                   minio=False)}, headers=auth_a)
        out["again_heads"] = heads[0] - before
        out["other_key"] = await http.post("/v1/photos", files={"file": ("a.jpg", car_jpeg)},
                                           headers={"Authorization": f"Bearer {key_b}"})
        return out

    out = run(app, body, heads=heads)
    assert out["over_cap"].status_code == 413 and "at most 20" in out["over_cap"].json()["detail"]
    assert out["over_cap_heads"] == 0
    flood = out["flood"]
    assert flood.status_code == 429, flood.text
    assert flood.headers["Retry-After"] == "5"
    assert len(flood.json()["accepted"]) == 5 and len(flood.json()["not_processed"]) == 15
    assert "share of the queue" in flood.json()["detail"]
    assert out["flood_heads"] == 5  # the 6th record met a full share before its HEAD
    assert redis_client.zcard(f"plateveil:inflight:{a}") == 5
    # the share still full: a second delivery is refused before any HEAD
    assert out["again"].status_code == 429 and out["again_heads"] == 0
    assert len(out["again"].json()["not_processed"]) == 20
    assert out["other_key"].status_code == 202  # another client is not starved
    redis_client.delete(queue)


def test_the_refused_rest_of_a_batch_is_made_on_retry_without_doubles(stack, photos, redis_client):
    queue = _queue()
    app, keys = own_app(stack, key_max_inflight=3, max_event_records=20, queue=queue)
    (a, key_a), _ = keys.items()
    doc = _minio(ORIGINALS_BUCKET, photos[:5])
    auth = {"Authorization": f"Bearer {key_a}"}
    first = run(app, lambda http: http.post("/v1/events/minio", json=doc, headers=auth))
    assert first.status_code == 429 and len(first.json()["accepted"]) == 3
    for job in first.json()["accepted"]:  # the worker finished them: the share frees up
        redis_client.hset("plateveil:job:" + job["job_id"], "status", "done")
    second = run(app, lambda http: http.post("/v1/events/minio", json=doc, headers=auth))
    assert second.status_code == 202, second.text
    assert len(second.json()["accepted"]) == 2 and len(second.json()["duplicates"]) == 3
    redis_client.delete(queue)


def test_the_rate_is_charged_per_job(stack, photos):
    """The guard takes one token per request; each job after the first costs one more."""
    queue = _queue()
    app, keys = own_app(stack, rate_per_s=0.01, rate_burst=4, queue=queue, max_event_records=20)
    (_, key_a), _ = keys.items()
    resp = run(app, lambda http: http.post("/v1/s3-events", headers={"Authorization": f"Bearer {key_a}"},
                                           json={"Records": _records(ORIGINALS_BUCKET, photos[:10], minio=False)}))
    assert resp.status_code == 429, resp.text
    assert "rate limit of this key" in resp.json()["detail"] and int(resp.headers["Retry-After"]) >= 1
    assert len(resp.json()["accepted"]) == 4  # 1 token for the request (its first job) + 3
    stack.redis_client().delete(queue)


def test_a_sender_chosen_version_id_does_not_queue_the_object_again(stack, s3, car_jpeg):
    """Was: the sender chose versionId, so the same object was queued again and again."""
    queue = _queue()
    bucket = f"versioned-{secrets.token_hex(3)}"
    app, keys = own_app(stack, queue=queue, source_allow={"*": (bucket + "/",)})
    (_, key_a), _ = keys.items()
    auth = {"Authorization": f"Bearer {key_a}"}
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key="car.jpg", Body=car_jpeg, ContentType="image/jpeg")

    async def body(http: httpx.AsyncClient) -> list[int]:
        made = []
        for n in range(5):
            resp = await http.post("/v1/events/minio", json=_minio(bucket, ["car.jpg"], version=f"v{n}"), headers=auth)
            assert resp.status_code == 202, resp.text
            made.append(len(resp.json()["accepted"]))
        # a real new version (same bytes, so the same ETag; S3 gives it a new VersionId) is a new job
        s3.put_object(Bucket=bucket, Key="car.jpg", Body=car_jpeg, ContentType="image/jpeg")
        resp = await http.post("/v1/events/minio", json=_minio(bucket, ["car.jpg"], version="v0"), headers=auth)
        made.append(len(resp.json()["accepted"]))
        return made

    assert run(app, body) == [1, 0, 0, 0, 0, 1]
    stack.redis_client().delete(queue)


def test_a_2000_record_request_makes_no_head(stack, photos):
    """Was: a 2,000-record MinIO request made 2,000 S3 HEADs."""
    app, keys = own_app(stack, queue=_queue())
    (_, key), _ = keys.items()
    heads = [0]
    doc = {"Records": [{"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": ORIGINALS_BUCKET},
                                                                    "object": {"key": photos[n % 40]}}}
                       for n in range(2000)]}
    assert len(json.dumps(doc)) < 300 * 1024  # under the intake body limit: the record cap answers

    async def body(http: httpx.AsyncClient) -> list[httpx.Response]:
        auth = {"Authorization": f"Bearer {key}"}
        return [await http.post("/v1/events/minio", json=doc, headers=auth),
                await http.post("/v1/s3-events", json=doc, headers=auth)]

    minio, s3_events = run(app, body, heads=heads)
    assert minio.status_code == 413 and "2000 records" in minio.json()["detail"]
    assert s3_events.status_code == 413  # over the 64 KiB JSON limit of /v1/s3-events already
    assert heads[0] == 0


def test_s3_events_apply_the_prefix_and_suffix_filters(stack, s3, car_jpeg):
    """Was: /v1/s3-events had its own path beside submit_record and skipped the filters."""
    queue = _queue()
    app, keys = own_app(stack, queue=queue, events_prefixes=("in/",), events_suffixes=(".jpg",))
    (_, key), _ = keys.items()
    for name in ("in/a.jpg", "in/b.png", "out/c.jpg"):
        s3.put_object(Bucket=ORIGINALS_BUCKET, Key=name, Body=car_jpeg, ContentType="image/jpeg")
    resp = run(app, lambda http: http.post("/v1/s3-events", headers={"Authorization": f"Bearer {key}"}, json={
        "Records": _records(ORIGINALS_BUCKET, ["in/a.jpg", "in/b.png", "out/c.jpg"], minio=False)}))
    assert resp.status_code == 202, resp.text
    assert [a["source_key"] for a in resp.json()["accepted"]] == ["in/a.jpg"]
    reasons = {s["key"]: s["reason"] for s in resp.json()["skipped"]}
    assert reasons == {k: "key does not match PLATEVEIL_EVENTS_PREFIXES / _SUFFIXES" for k in ("in/b.png", "out/c.jpg")}
    stack.redis_client().delete(queue)


# -- the SQS consumer: the same function, as PLATEVEIL_SQS_KEY_ID ----------------------------------


def _services(stack: Any, **overrides: Any) -> Any:
    from producer.services import Services
    from producer.settings import ProducerSettings

    env = stack.env
    settings = ProducerSettings(
        redis_url=env["PLATEVEIL_REDIS_URL"], s3_endpoint_url=env["PLATEVEIL_S3_ENDPOINT_URL"],
        s3_region=env["PLATEVEIL_S3_REGION"], s3_access_key_id=env["PLATEVEIL_S3_ACCESS_KEY_ID"],
        s3_secret_access_key=env["PLATEVEIL_S3_SECRET_ACCESS_KEY"], s3_max_attempts=1,
        api_key_hashes=env["PLATEVEIL_API_KEY_HASHES"], **overrides)
    return Services.from_settings(settings)


def test_the_sqs_consumer_is_bounded_by_its_identitys_share_and_owns_its_jobs(stack, photos, redis_client):
    import boto3

    from plateveil_ops.stack import S3_KEY_ID, S3_REGION, S3_SECRET
    from producer.intake.records import TooManyRecords
    from producer.intake.sqs import ConsumeStats, handle_body, receive_once

    identity, queue = f"sqs-{secrets.token_hex(3)}", _queue()
    svc = _services(stack, sqs_key_id=identity, key_max_inflight=2, max_event_records=10, queue=queue,
                    sqs_wait_time_s=1, source_allow={identity: (ORIGINALS_BUCKET + "/",)})
    sqs = boto3.session.Session().client("sqs", endpoint_url=stack.s3_endpoint_url, region_name=S3_REGION,
                                         aws_access_key_id=S3_KEY_ID, aws_secret_access_key=S3_SECRET)
    url = sqs.create_queue(QueueName=f"intake-{secrets.token_hex(3)}", Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    try:
        with pytest.raises(TooManyRecords):  # the cap: the message is left for the redrive policy
            handle_body(svc, json.dumps({"Records": _records(ORIGINALS_BUCKET, photos[:11], minio=False)}))
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"Records": _records(ORIGINALS_BUCKET, photos[:4],
                                                                                      minio=False)}))
        stats = ConsumeStats()
        receive_once(svc, sqs, url, stats)
        assert stats.received == 1 and stats.left == 1 and stats.deleted == 0  # the rest comes back later
        assert len(stats.jobs) == 2
        assert {redis_client.hget(f"plateveil:job:{j}", "key_id") for j in stats.jobs} == {identity}
        for job_id in stats.jobs:  # the worker finished them: the next receive makes the other two
            redis_client.hset(f"plateveil:job:{job_id}", "status", "done")
        time.sleep(1.2)
        again = ConsumeStats()
        receive_once(svc, sqs, url, again)
        assert again.deleted == 1 and len(again.jobs) == 2 and len(again.skipped) == 2  # 2 duplicates
    finally:
        sqs.delete_queue(QueueUrl=url)
        redis_client.delete(queue)
        svc.close()


def test_one_object_named_many_times_in_a_delivery_is_headed_once(stack, photos):
    queue = _queue()
    app, keys = own_app(stack, queue=queue, max_event_records=50)
    (_, key), _ = keys.items()
    heads = [0]
    doc = _minio(ORIGINALS_BUCKET, [photos[0]] * 50)
    resp = run(app, lambda http: http.post("/v1/events/minio", json=doc, headers={"Authorization": f"Bearer {key}"}),
               heads=heads)
    assert resp.status_code == 202, resp.text
    assert len(resp.json()["accepted"]) == 1 and len(resp.json()["duplicates"]) == 49
    assert heads[0] == 1
    stack.redis_client().delete(queue)
