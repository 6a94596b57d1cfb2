"""The review pages' API over the real stack (Redis, moto S3, a worker, the upload service): reviewer
auth, polygon validation, re-rendered corrections (sidecar record, event, job record), accept, the
queue's filters and ``POST /v1/jobs/{id}/flag``."""

from __future__ import annotations

import json
import re

import cv2
import httpx
import numpy as np
import pytest

from plateveil_ops.samples import render_scene
from plateveil_ops.stack import OUTPUT_BUCKET, REVIEWER
from producer.review.auth import COOKIE_NAME
from producer.review.corrections import render

pytestmark = pytest.mark.integration

CSRF = re.compile(r'<meta name="csrf-token" content="([0-9a-f]+)">')


def login(stack) -> tuple[httpx.Client, str]:
    http = httpx.Client(base_url=stack.api_url, timeout=30)
    resp = http.post("/review/login", data={"name": REVIEWER, "key": stack.review_key, "next": "/review"})
    assert resp.status_code == 303 and resp.headers["location"] == "/review"
    cookie = resp.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/review" in cookie
    page = http.get("/review", headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text
    return http, CSRF.search(page.text).group(1)


@pytest.fixture(scope="module")
def reviewer(stack):
    http, token = login(stack)
    http.headers["X-CSRF-Token"] = token
    yield http
    http.close()


def decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).astype(np.int16)


def mask_of(shape, polygons, grow: int = 0) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    for p in polygons:
        cv2.fillPoly(mask, [np.round(np.asarray(p)).astype(np.int32)], 255)
    if grow:
        mask = cv2.dilate(mask, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    return mask > 0


def done_job(client, seed: int, style: str = "blur") -> tuple[dict, bytes, object]:
    scene = render_scene(seed=seed, size=(480, 360))
    data = scene.jpeg()
    job = client.wait(client.submit_photo(data, style=style)["job_id"], timeout=60)
    assert job["status"] == "done", job
    return job, data, scene


def output(s3, job) -> tuple[bytes, dict]:
    obj = s3.get_object(Bucket=OUTPUT_BUCKET, Key=job["output_key"])
    side = json.loads(s3.get_object(Bucket=OUTPUT_BUCKET, Key=job["sidecar_key"])["Body"].read())
    return obj["Body"].read(), side


# -- auth ------------------------------------------------------------------------------------------
def test_every_review_path_needs_the_reviewer_login(stack, client):
    job, _, _ = done_job(client, seed=11)
    anon = httpx.Client(base_url=stack.api_url, timeout=30)
    for path in ("/review", f"/review/jobs/{job['job_id']}", "/review/anything/else", "/review/static/review.js"):
        page = anon.get(path, headers={"Accept": "text/html"})
        assert page.status_code == 303 and page.headers["location"].startswith("/review/login?next=")
        assert "plateveil" not in page.text
    for path in (f"/review/jobs/{job['job_id']}/original", f"/review/jobs/{job['job_id']}/concealed",
                 "/review/static/review.js", "/review/nope"):
        resp = anon.get(path)
        assert resp.status_code == 401 and resp.json() == {"detail": "reviewer login required"}
    resp = anon.post(f"/review/api/jobs/{job['job_id']}/corrections", json={"revision": 0, "add": []})
    assert resp.status_code == 401
    # an upload API key is not a reviewer credential, neither as a bearer token nor at the login form
    bearer = {"Authorization": f"Bearer {stack.api_key}"}
    assert anon.get(f"/review/jobs/{job['job_id']}/original", headers=bearer).status_code == 401
    assert anon.post("/review/login", data={"name": REVIEWER, "key": stack.api_key}).status_code == 401
    assert anon.post("/review/login", data={"name": REVIEWER, "key": stack.review_key + "x"}).status_code == 401
    # a tampered session cookie is refused
    anon.cookies.set(COOKIE_NAME, "eyJuIjoicmV2aWV3ZXIifQ.bad.sig", path="/review")
    assert anon.get("/review/static/review.js").status_code == 401
    anon.close()


def test_reviewer_session_is_not_an_api_key_and_posts_need_csrf(stack, client):
    job, _, _ = done_job(client, seed=12)
    http, token = login(stack)
    assert http.get(f"/v1/jobs/{job['job_id']}").status_code == 401   # the session does not open /v1
    assert http.get(f"/review/jobs/{job['job_id']}/original").status_code == 200
    url = f"/review/api/jobs/{job['job_id']}/accept"
    assert http.post(url).status_code == 403
    assert http.post(url, headers={"X-CSRF-Token": "0" * 64}).status_code == 403
    assert http.post(url, headers={"X-CSRF-Token": token, "Origin": "https://evil.example"}).status_code == 403
    ok = http.post(url, headers={"X-CSRF-Token": token, "Origin": stack.api_url})
    assert ok.status_code == 200 and ok.json()["reviewed_by"] == REVIEWER
    http.close()


def test_login_redirect_stays_on_review_pages(stack):
    http = httpx.Client(base_url=stack.api_url, timeout=30)
    for target in ("https://evil.example/", "//evil.example/review", "/v1/jobs"):
        resp = http.post("/review/login", data={"name": REVIEWER, "key": stack.review_key, "next": target})
        assert resp.status_code == 303 and resp.headers["location"] == "/review"
    http.close()


# -- photos ------------------------------------------------------------------------------------------
def test_original_is_streamed_privately(stack, client, reviewer):
    job, data, _ = done_job(client, seed=13)
    resp = reviewer.get(f"/review/jobs/{job['job_id']}/original")
    assert resp.status_code == 200 and resp.content == data
    assert resp.headers["content-type"] == "image/jpeg" and "no-store" in resp.headers["cache-control"]
    concealed = reviewer.get(f"/review/jobs/{job['job_id']}/concealed")
    assert concealed.status_code == 200 and concealed.content != data
    page = reviewer.get(f"/review/jobs/{job['job_id']}", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "default-src 'none'" in page.headers["content-security-policy"]
    embedded = json.loads(re.search(r'<script type="application/json" id="job-data">(.*?)</script>', page.text,
                                    re.S).group(1))
    assert embedded["plates"] == job["plates"] and embedded["revision"] == 0
    assert reviewer.get("/review/jobs/" + "0" * 32, headers={"Accept": "text/html"}).status_code == 404


# -- corrections --------------------------------------------------------------------------------------
def test_correction_rerenders_from_the_original(stack, client, reviewer, s3, redis_client):
    job, original_bytes, scene = done_job(client, seed=1)
    assert job["plate_count"] >= 1, "the shipped model finds the plate of sample scene 1"
    before_bytes, before_side = output(s3, job)
    original, before = decode(original_bytes), decode(before_bytes)
    url = f"/review/api/jobs/{job['job_id']}/corrections"
    old_polys = [p["polygon"] for p in job["plates"]]

    # 1. remove every concealment (as if they were no plate): the pixels come back from the original
    resp = reviewer.post(url, json={"revision": 0, "remove": list(range(job["plate_count"])), "note": "test"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["revision"] == 1 and resp.json()["plate_count"] == 0
    after1_bytes, side1 = output(s3, job)
    after1 = decode(after1_bytes)
    inside = mask_of(original.shape, old_polys)
    assert np.abs(after1 - original)[inside].mean() < 3.0          # restored (JPEG re-encode only)
    assert np.abs(before - original)[inside].mean() > 8.0          # it had been concealed
    rec = side1["corrections"][0]
    assert rec["by"] == REVIEWER and rec["revision"] == 1 and rec["note"] == "test" and rec["added"] == []
    assert rec["previous_plates"] == before_side["plates"] and rec["previous_style"] == "blur"
    assert [r["index"] for r in rec["removed"]] == list(range(job["plate_count"]))
    assert side1["plates"] == [] and side1["plate_count"] == 0

    # 2. draw the plate back by hand (a "missed" plate): concealed inside, nothing else changes
    quad = [list(p) for p in scene.plate_quad]
    resp = reviewer.post(url, json={"revision": 1, "add": [quad]})
    assert resp.status_code == 200, resp.text
    after2_bytes, side2 = output(s3, job)
    after2 = decode(after2_bytes)
    plate = mask_of(original.shape, [quad])
    assert np.abs(after2 - original)[plate].mean() > 15.0           # the text is gone
    expected_bytes, fmt = render(original_bytes, [quad], "blur", 90)
    assert fmt == "jpeg" and np.abs(decode(expected_bytes) - after2).max() <= 2   # the pipeline's own render
    outside = ~mask_of(original.shape, [quad], grow=40)
    diff = np.abs(after2 - after1)[outside]
    assert diff.mean() < 0.5 and np.percentile(diff, 99.9) <= 8      # the rest: unchanged within a re-encode
    added = side2["plates"][0]
    assert added["origin"] == "reviewer" and added["score"] is None and added["added_by"] == REVIEWER
    assert added["polygon"] == quad                                  # already TL, TR, BR, BL
    assert [c["revision"] for c in side2["corrections"]] == [1, 2]

    head = s3.head_object(Bucket=OUTPUT_BUCKET, Key=job["output_key"])
    assert head["Metadata"]["plate-count"] == "1" and head["Metadata"]["corrected-by"] == REVIEWER
    assert head["Metadata"]["model-version"] == job["model"] and head["ContentType"] == "image/jpeg"
    assert client.status(job["job_id"])["plates"] == side2["plates"]
    events = [f for _, f in redis_client.xrange("plateveil:events") if f["job_id"] == job["job_id"]]
    assert [e.get("event", "completed") for e in events] == ["completed", "corrected", "corrected"]
    assert events[-1]["status"] == "done" and events[-1]["plate_count"] == "1"

    # 3. a page showing revision 1 cannot overwrite revision 2
    stale = reviewer.post(url, json={"revision": 1, "style": "solid"})
    assert stale.status_code == 409 and "reload" in stale.json()["detail"]

    # 4. the style alone: solid fills the plate with one colour
    resp = reviewer.post(url, json={"revision": 2, "style": "solid"})
    assert resp.status_code == 200 and resp.json()["style"] == "solid"
    after3, side3 = output(s3, job)
    inner = cv2.erode(mask_of(original.shape, [quad]).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    assert decode(after3)[inner].std() < 4.0
    assert side3["corrections"][-1]["style"] == {"from": "blur", "to": "solid"}


BAD = [
    ({"revision": 0, "add": [[[10, 10], [50, 10], [50, 30]]]}, "4 points"),
    ({"revision": 0, "add": [[[10, 10], [50, 10], [50, 30], [10, "x"]]]}, "finite numbers"),
    ({"revision": 0, "add": [[[10, 10], [5000, 10], [5000, 30], [10, 30]]]}, "outside"),
    ({"revision": 0, "add": [[[10, 10], [20, 20], [30, 30], [40, 40]]]}, "convex"),
    ({"revision": 0, "add": [[[10, 10], [12, 10], [12, 12], [10, 12]]]}, "square pixels"),
    ({"revision": 0, "remove": [7]}, "no plate 7"),
    ({"revision": 0, "remove": [0, 0]}, "twice"),
    ({"revision": 0, "style": "sparkle"}, "unknown style"),
    ({"revision": 0}, "nothing to change"),
    ({"revision": -1, "remove": [0]}, "revision"),
    ({"revision": 0, "add": [], "colour": "red"}, "unknown fields"),
    ([1, 2], "JSON object"),
]


def test_bad_corrections_are_refused_and_change_nothing(client, reviewer, s3):
    job, _, _ = done_job(client, seed=14)
    before = output(s3, job)
    url = f"/review/api/jobs/{job['job_id']}/corrections"
    for body, words in BAD:
        resp = reviewer.post(url, json=body)
        assert resp.status_code == 422, (body, resp.text)
        assert words in resp.json()["detail"], (body, resp.json())
    assert reviewer.post(url, content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 422
    assert reviewer.post(url, json={"revision": 3, "style": "solid"}).status_code == 409
    assert reviewer.post("/review/api/jobs/unknown/corrections", json={"revision": 0}).status_code == 404
    assert output(s3, job) == before


def test_a_save_while_another_runs_is_refused(client, reviewer, s3, redis_client):
    job, _, _ = done_job(client, seed=24)
    before = output(s3, job)
    url = f"/review/api/jobs/{job['job_id']}/corrections"
    lock = redis_client.lock("plateveil:review:lock:" + job["job_id"], timeout=30)
    assert lock.acquire(blocking=False)      # another save holds the job
    try:
        resp = reviewer.post(url, json={"revision": 0, "style": "solid"})
        assert resp.status_code == 409 and "right now" in resp.json()["detail"]
        assert output(s3, job) == before
    finally:
        lock.release()
    assert reviewer.post(url, json={"revision": 0, "style": "solid"}).status_code == 200


def test_corners_outside_by_a_hair_are_clipped_and_ordered(client, reviewer, s3):
    job, _, _ = done_job(client, seed=15)
    # clicked in another order (BR, TL, BL, TR) and 1 px past the left edge
    quad = [[60, 40], [-1, 10], [-1, 40], [60, 10]]
    resp = reviewer.post(f"/review/api/jobs/{job['job_id']}/corrections", json={"revision": 0, "add": [quad]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["plates"][-1]["polygon"] == [[0.0, 10.0], [60.0, 10.0], [60.0, 40.0], [0.0, 40.0]]


# -- queue, accept, flags ------------------------------------------------------------------------------
def test_flag_puts_the_job_first_and_accept_clears_it(stack, client, reviewer):
    first, _, _ = done_job(client, seed=16)
    second, _, _ = done_job(client, seed=17)
    flagged = client.flag(first["job_id"], "seller: my  plate is visible ")
    assert flagged["flagged"] is True and flagged["flag_count"] == 1
    assert flagged["review_url"].endswith(f"/review/jobs/{first['job_id']}")
    assert client.flag(first["job_id"], "buyer: still visible")["flag_count"] == 2
    page = reviewer.get("/review", headers={"Accept": "text/html"}).text
    ids = re.findall(r'data-href="/review/jobs/([0-9a-f]+)', page)
    assert ids[0] == first["job_id"] and second["job_id"] in ids
    assert "buyer: still visible" in page
    only = re.findall(r'data-href="/review/jobs/([0-9a-f]+)', reviewer.get("/review?flagged=1").text)
    assert only == [first["job_id"]]
    job_page = reviewer.get(f"/review/jobs/{first['job_id']}?flagged=1").text
    assert "seller: my plate is visible" in job_page

    assert reviewer.post(f"/review/api/jobs/{first['job_id']}/accept").status_code == 200
    assert re.findall(r'data-href="/review/jobs/([0-9a-f]+)', reviewer.get("/review?flagged=1").text) == []
    assert first["job_id"] not in reviewer.get("/review").text                        # reviewed: not open
    assert first["job_id"] in reviewer.get("/review?state=reviewed").text


def test_flag_endpoint_checks_key_job_and_reason(stack, client):
    anon = httpx.Client(base_url=stack.api_url, timeout=30)
    job, _, _ = done_job(client, seed=18)
    assert anon.post(f"/v1/jobs/{job['job_id']}/flag", json={"reason": "x"}).status_code == 401
    with pytest.raises(httpx.HTTPStatusError) as err:
        client.flag("0" * 32, "no such job")
    assert err.value.response.status_code == 404
    for body in ({"reason": ""}, {"reason": "   "}, {}, {"reason": "x" * 501}):
        assert client.http.post(f"/v1/jobs/{job['job_id']}/flag", json=body).status_code == 422, body
    anon.close()


def test_queue_filters(stack, client, reviewer):
    blank = cv2.imencode(".jpg", np.full((120, 160, 3), 128, np.uint8))[1].tobytes()
    empty = client.wait(client.submit_photo(blank)["job_id"], timeout=60)
    assert empty["status"] == "done" and empty["plate_count"] == 0
    found, _, _ = done_job(client, seed=19)
    assert found["plate_count"] >= 1

    def ids(query: str) -> list[str]:
        resp = reviewer.get("/review?state=all&" + query)
        assert resp.status_code == 200
        return re.findall(r'data-href="/review/jobs/([0-9a-f]+)', resp.text)

    assert empty["job_id"] in ids("no_plate=1") and found["job_id"] not in ids("no_plate=1")
    day = found["completed_at"][:10]
    assert found["job_id"] in ids(f"date={day}") and ids("date=2001-01-01") == []
    assert found["job_id"] in ids(f"model={found['model']}") and ids("model=nobody@0") == []
    low = min(p["score"] for p in found["plates"]) < 0.95
    assert (found["job_id"] in ids("low_score=1")) == low
    assert empty["job_id"] not in ids("low_score=1")
    assert reviewer.get("/review?date=yesterday").status_code == 422


def test_a_tiff_original_is_shown_as_png_and_corrected(client, reviewer, s3):
    scene = render_scene(seed=23, size=(320, 240))
    tiff = cv2.imencode(".tif", scene.image_bgr)[1].tobytes()
    job = client.wait(client.submit_photo(tiff)["job_id"], timeout=60)
    assert job["status"] == "done" and job["output_key"].endswith(".png")
    shown = reviewer.get(f"/review/jobs/{job['job_id']}/original")
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/png"
    assert np.array_equal(decode(shown.content), scene.image_bgr.astype(np.int16))
    quad = [list(p) for p in scene.plate_quad]
    resp = reviewer.post(f"/review/api/jobs/{job['job_id']}/corrections",
                         json={"revision": 0, "remove": list(range(job["plate_count"])), "add": [quad]})
    assert resp.status_code == 200, resp.text
    out, _ = output(s3, job)
    assert out[:8] == b"\x89PNG\r\n\x1a\n"
    expected, fmt = render(tiff, [quad], "blur", 90)
    assert fmt == "png" and np.array_equal(decode(out), decode(expected))
