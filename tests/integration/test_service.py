"""The whole system over real servers: upload -> worker -> S3 outputs, status, events, errors."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from plateveil.schema import JobStatus
from plateveil_ops.stack import ORIGINALS_BUCKET, OUTPUT_BUCKET
from tests.conftest import MAX_UPLOAD_BYTES

pytestmark = pytest.mark.integration

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_upload_is_concealed_into_s3_with_sidecar_and_event(client, s3, redis_client, car_jpeg):
    accepted = client.submit_photo(car_jpeg, style="solid", metadata={"listing-id": "L42"})
    assert accepted["status"] == "queued"
    assert accepted["output_bucket"] == OUTPUT_BUCKET
    assert accepted["source_key"].startswith("originals/") and accepted["source_key"].endswith(".jpg")
    assert accepted["sidecar_key"] == accepted["output_key"] + ".json"

    job = client.wait(accepted["job_id"], timeout=60)
    assert job["status"] == "done", job
    assert job["error"] is None
    assert job["model"] and "@" in job["model"]
    assert job["plate_count"] == len(job["plates"])
    assert ISO_MS.match(job["accepted_at"]) and ISO_MS.match(job["completed_at"])
    assert job["completed_at"] >= job["accepted_at"]
    assert {"decode", "detect", "landmarks", "conceal", "encode", "total"} <= set(job["timings_ms"])
    # the worker's CPU time for the job (all its threads): at least the pipeline's work, which ran in it
    assert job["timings_ms"]["cpu"] > 0
    assert job["metadata"] == {"listing-id": "L42"}

    original = s3.head_object(Bucket=ORIGINALS_BUCKET, Key=accepted["source_key"])
    assert original["ContentType"] == "image/jpeg"

    out = s3.get_object(Bucket=OUTPUT_BUCKET, Key=accepted["output_key"])
    assert out["ContentType"] == "image/jpeg"
    assert out["Metadata"]["model-version"] == job["model"]
    assert out["Metadata"]["plate-count"] == str(job["plate_count"])
    assert out["Body"].read()[:3] == b"\xff\xd8\xff"

    side = s3.get_object(Bucket=OUTPUT_BUCKET, Key=accepted["sidecar_key"])
    assert side["ContentType"] == "application/json"
    assert side["Metadata"]["model-version"] == job["model"]
    sidecar = json.loads(side["Body"].read())
    assert sidecar["model"] == job["model"]
    assert sidecar["style"] == "solid"
    assert sidecar["image"]["width"] == 480 and sidecar["image"]["height"] == 360
    assert sidecar["source"] == {"bucket": ORIGINALS_BUCKET, "key": accepted["source_key"],
                                 "etag": original["ETag"].strip('"'), "content_type": "image/jpeg",
                                 "size": len(car_jpeg)}
    assert sidecar["plates"] == job["plates"]
    assert all(len(p["polygon"]) == 4 and "score" in p for p in sidecar["plates"])
    # issue 37: how the output was written (a baseline JPEG: only the plates' blocks, or kept as it came)
    from plateveil.imaging import jpeg_blocks

    expected = ({"blocks", "lossless"} if jpeg_blocks.available() is None else {"reencoded"})
    assert sidecar["encoding"]["path"] in expected, sidecar["encoding"]

    events = redis_client.xrange("plateveil:events")
    mine = [fields for _, fields in events if fields["job_id"] == accepted["job_id"]]
    assert mine == [{"job_id": accepted["job_id"], "status": "done", "output_bucket": OUTPUT_BUCKET,
                     "output_key": accepted["output_key"], "sidecar_key": accepted["sidecar_key"],
                     "model": job["model"], "plate_count": str(job["plate_count"]), "error": "",
                     "completed_at": job["completed_at"]}]


def test_raw_png_body_keeps_its_format(stack, client, s3):
    from plateveil_ops.samples import render_scene

    png = render_scene(seed=2, size=(320, 240)).png()
    resp = client.http.post("/v1/photos?style=pixelate", content=png, headers={"Content-Type": "image/png"})
    assert resp.status_code == 202, resp.text
    accepted = resp.json()
    assert accepted["output_key"].endswith(".png") and accepted["style"] == "pixelate"
    assert client.wait(accepted["job_id"])["status"] == "done"
    out = s3.get_object(Bucket=OUTPUT_BUCKET, Key=accepted["output_key"])
    assert out["ContentType"] == "image/png"
    assert out["Body"].read()[:8] == b"\x89PNG\r\n\x1a\n"


def test_job_for_an_object_already_in_s3(client, s3, car_jpeg):
    s3.put_object(Bucket=ORIGINALS_BUCKET, Key="incoming/car one.jpg", Body=car_jpeg, ContentType="image/jpeg")
    accepted = client.submit_s3_object(ORIGINALS_BUCKET, "incoming/car one.jpg", style="overlay")
    assert accepted["source_key"] == "incoming/car one.jpg"
    job = client.wait(accepted["job_id"])
    assert job["status"] == "done", job
    assert s3.head_object(Bucket=OUTPUT_BUCKET, Key=accepted["output_key"])["ContentType"] == "image/jpeg"


def test_job_for_a_missing_object_is_404(client):
    resp = client.http.post("/v1/jobs", json={"bucket": ORIGINALS_BUCKET, "key": "no/such.jpg"})
    assert resp.status_code == 404
    assert resp.json()["detail"] == "no such object, or this API key may not read it"


def test_s3_event_notification_enqueues_created_objects(client, s3, car_jpeg):
    s3.put_object(Bucket=ORIGINALS_BUCKET, Key="events/my car+1.jpg", Body=car_jpeg, ContentType="image/jpeg")
    notification = {"Records": [
        {"eventName": "ObjectCreated:Put",
         "s3": {"bucket": {"name": ORIGINALS_BUCKET}, "object": {"key": "events/my+car%2B1.jpg"}}},
        {"eventName": "ObjectRemoved:Delete",
         "s3": {"bucket": {"name": ORIGINALS_BUCKET}, "object": {"key": "events/gone.jpg"}}},
        {"eventName": "ObjectCreated:Put",
         "s3": {"bucket": {"name": OUTPUT_BUCKET}, "object": {"key": "concealed/x.jpg"}}},
    ]}
    resp = client.http.post("/v1/s3-events", json=notification)
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert [a["source_key"] for a in body["accepted"]] == ["events/my car+1.jpg"]
    assert sorted(s["key"] for s in body["skipped"]) == ["concealed/x.jpg", "events/gone.jpg"]
    assert client.wait(body["accepted"][0]["job_id"])["status"] == "done"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}])
def test_missing_or_wrong_api_key_is_401(stack, headers, car_jpeg):
    resp = httpx.post(stack.api_url + "/v1/photos", files={"file": ("a.jpg", car_jpeg)}, headers=headers)
    assert resp.status_code == 401
    assert httpx.get(stack.api_url + "/v1/jobs/abc", headers=headers).status_code == 401


def test_too_large_is_413(client):
    big = b"\xff\xd8\xff\xe0" + b"\0" * MAX_UPLOAD_BYTES
    assert client.http.post("/v1/photos", files={"file": ("big.jpg", big)}).status_code == 413
    resp = client.http.post("/v1/photos", content=big, headers={"Content-Type": "image/jpeg"})
    assert resp.status_code == 413


def test_not_an_image_is_415(client):
    resp = client.http.post("/v1/photos", files={"file": ("a.jpg", b"hello, I am text" * 10)})
    assert resp.status_code == 415
    gif = b"GIF89a" + b"\0" * 64
    assert client.http.post("/v1/photos", files={"file": ("a.gif", gif)}).status_code == 415


def test_unknown_style_is_422(client, car_jpeg):
    resp = client.http.post("/v1/photos", files={"file": ("a.jpg", car_jpeg)}, data={"style": "sparkles"})
    assert resp.status_code == 422
    assert "valid styles" in resp.text


def test_unknown_job_is_404(client):
    assert client.http.get("/v1/jobs/0123456789abcdef").status_code == 404


def test_broken_photo_fails_and_the_next_job_succeeds(client, car_jpeg):
    broken = car_jpeg[:200] + b"garbage" * 50  # valid JPEG magic, truncated body
    bad = client.submit_photo(broken)
    good = client.submit_photo(car_jpeg)
    bad_job = client.wait(bad["job_id"])
    assert bad_job["status"] == JobStatus.FAILED
    assert bad_job["error"]
    assert bad_job["attempts"] == 1  # permanent: not retried
    assert client.wait(good["job_id"])["status"] == "done"


def test_healthz_and_openapi(stack):
    health = httpx.get(stack.api_url + "/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}  # details only with a key
    auth = {"Authorization": f"Bearer {stack.api_key}"}
    assert httpx.get(stack.api_url + "/healthz", headers=auth).json() == {
        "status": "ok", "checks": {"redis": "ok", "s3": "ok"}}
    assert httpx.get(stack.api_url + "/openapi.json").status_code == 401
    assert httpx.get(stack.api_url + "/docs").status_code == 401
    spec = httpx.get(stack.api_url + "/openapi.json", headers=auth).json()
    assert {"/v1/photos", "/v1/jobs", "/v1/s3-events", "/v1/jobs/{job_id}", "/healthz"} <= set(spec["paths"])
    assert httpx.get(stack.api_url + "/docs", headers=auth).status_code == 200
