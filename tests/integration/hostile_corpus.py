"""A generated corpus of bad input (issue 27; the intake routes: issue 36): every kind a hostile but
careful new user tried, built from code at test time (nothing binary is checked in). Each :class:`Case` says how it is
sent and what the service must answer: the HTTP status (and a phrase of the reason), and for
photos the API accepts, how the job must end (``done`` or ``failed`` with a phrase)."""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from PIL import Image

from plateveil_ops.samples import flat_png, render_scene

ORIGINALS = "plateveil-originals"


@dataclass(frozen=True)
class Case:
    name: str
    send: Callable[[Any, str], Any]  # (httpx client with the key, base url) -> response
    status: int
    reason: str = ""  # a phrase of the answer's detail (4xx) or of the job's error (failed)
    job: str | None = None  # "done" / "failed" when the API accepts a photo (202); None: an event (202, no job)
    check_output: Callable[[bytes], bool] | None = field(default=None)
    check_answer: Callable[[Any], bool] | None = field(default=None)  # on the JSON body of a 2xx


def _car(seed: int = 7, size: tuple[int, int] = (320, 240)) -> np.ndarray:
    return render_scene(seed=seed, size=size).image_bgr


def _jpeg(img: np.ndarray | None = None) -> bytes:
    return cv2.imencode(".jpg", _car() if img is None else img)[1].tobytes()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def pixel_bomb_png() -> bytes:
    """A tiny PNG whose header claims 30000 x 30000 pixels."""
    png = bytearray(cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes())
    ihdr = b"IHDR" + struct.pack(">II", 30000, 30000) + bytes(png[24:29])
    png[16:24] = ihdr[4:12]
    png[29:33] = struct.pack(">I", zlib.crc32(ihdr))
    return bytes(png)


def animated(fmt: str) -> bytes:
    frames = [Image.fromarray(np.full((32, 32, 3), v, np.uint8)) for v in (0, 128, 255)]
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=80, loop=0)
    return buf.getvalue()


def junk_icc_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_car()[:, :, ::-1]).save(buf, "PNG", icc_profile=b"\x00\x10\x00\x00" + b"Z" * (2**20 - 4))
    return buf.getvalue()


def polyglot_jpeg() -> bytes:
    """A JPEG with an HTML/ZIP trailer after its end-of-image marker."""
    return _jpeg() + b"<html><script>alert(1)</script></html>PK\x03\x04" + b"POLYGLOT-TRAILER" * 64


def junk_exif_jpeg() -> bytes:
    data = _jpeg()
    app1 = b"Exif\x00\x00" + b"MM\x00\x2a\x00\x00\x00\x08" + b"\xff" * 200  # IFD count 65535, no entries
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:]


def big_flat_jpeg() -> bytes:
    """6000x4000 (72 MB decoded), a few hundred KB stored: over the test stack's 64 MiB budget."""
    img = np.full((4000, 6000, 3), 140, np.uint8)
    img[1500:2500, 2000:4000] = (30, 60, 200)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()


def bmp_bomb() -> bytes:
    header = b"BM" + struct.pack("<IHHI", 54, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, 40000, 40000, 1, 24, 0, 0, 0, 0, 0, 0)
    return header + info + b"\x00" * 64


def _upload(data: bytes, name: str = "photo.jpg", **form: str) -> Callable[[Any, str], Any]:
    return lambda http, url: http.post("/v1/photos", files={"file": (name, data)}, data=form or None)


def _post_json(path: str, text: str) -> Callable[[Any, str], Any]:
    return lambda http, url: http.post(path, content=text, headers={"Content-Type": "application/json"})


def _event(bucket: str, key: str, etag: str = "e1") -> dict[str, Any]:
    return {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": bucket}, "object": {"key": key, "eTag": etag}}}


def _minio(doc: Any) -> Callable[[Any, str], Any]:
    return lambda http, url: http.post("/v1/events/minio", json=doc)


def _no_job(reason: str) -> Callable[[Any], bool]:
    """An event answered 202 that made no job and says why (the reason of its skipped record)."""
    return lambda body: body["accepted"] == [] and reason in json.dumps(body)


def _no_key(method: str, path: str, body: bytes) -> Callable[[Any, str], Any]:
    import httpx

    return lambda http, url: httpx.request(method, url + path, content=body,
                                           headers={"Content-Type": "application/json"}, timeout=30)


def cases(max_upload_bytes: int) -> list[Case]:
    truncated = _jpeg(_car(size=(640, 480)))
    truncated = truncated[: len(truncated) * 2 // 3]
    png = cv2.imencode(".png", _car())[1].tobytes()
    big_body = b"{" + b" " * (16 * 2**20)  # 16 MB
    return [
        # -- refused at the API --------------------------------------------------------------------
        Case("16 MB JSON body without a key", _no_key("POST", "/v1/s3-events", big_body), 401, "invalid API key"),
        Case("16 MB JSON body with a key", _post_json("/v1/s3-events", big_body.decode()), 413, "larger than"),
        Case("photo over the upload limit", _upload(b"\xff\xd8\xff\xe0" + b"\0" * (max_upload_bytes + 1)), 413),
        Case("JSON nested 100,000 deep", _post_json("/v1/jobs", "[" * 100_000), 413, "larger than"),
        Case("JSON nested 20,000 deep", _post_json("/v1/jobs", "[" * 20_000 + "]" * 20_000), 422, "nested deeper"),
        Case("5,000-digit number", _post_json("/v1/jobs", '{"bucket": ' + "7" * 5000 + "}"), 422, "number longer"),
        Case("metadata nested 100,000 deep", _upload(_jpeg(), metadata="[" * 100_000), 422, "metadata must be"),
        Case("metadata with a 5,000-digit number", _upload(_jpeg(), metadata='{"a": ' + "1" * 5000 + "}"), 422),
        Case("CRLF in a metadata value", _upload(_jpeg(), metadata='{"a": "x\\r\\nX-Amz-Meta-B: y"}'), 422,
             "no CR, LF"),
        Case("bucket UPPER_case!!", _post_json("/v1/jobs", '{"bucket": "UPPER_case!!", "key": "a.jpg"}'), 422,
             "invalid bucket name"),
        Case("bucket a/../b", _post_json("/v1/jobs", '{"bucket": "a/../b", "key": "a.jpg"}'), 422,
             "invalid bucket name"),
        Case("key with .. segments", _post_json("/v1/jobs", f'{{"bucket": "{ORIGINALS}", "key": "a/../b.jpg"}}'),
             422, "invalid object key"),
        Case("another team's bucket", _post_json("/v1/jobs", '{"bucket": "hr-private", "key": "passport-scan.jpg"}'),
             404, "no such object"),
        Case("1,000-record S3 event", lambda http, url: http.post(
            "/v1/s3-events", json={"Records": [_event(ORIGINALS, f"k{n}.jpg", f"e{n}") for n in range(1000)]}),
            413),
        Case("S3 event with a malformed record", lambda http, url: http.post(
            "/v1/s3-events", json={"Records": [_event(ORIGINALS, "a.jpg"), {"s3": {}}]}), 422, "record 1"),
        Case("invalid UTF-8 in JSON", lambda http, url: http.post(
            "/v1/s3-events", content=b'{"a": "\xff\xfe"}', headers={"Content-Type": "application/json"}),
            422, "invalid JSON"),
        # -- the intake routes (issue 36) --------------------------------------------------------
        Case("MinIO event with 1,000 records", _minio({"Records": [
            {"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": ORIGINALS}, "object": {"key": f"k{n}.jpg"}}}
            for n in range(1000)]}), 413, "records in one notification"),
        Case("MinIO body that is not JSON", lambda http, url: http.post(
            "/v1/events/minio", content=b"EventName=s3:ObjectCreated:Put", headers={"Content-Type": "text/plain"}),
            422, "not a MinIO/S3 notification"),
        Case("MinIO notification without Records", _minio({"EventName": "s3:ObjectCreated:Put", "Key": "a/b"}), 422,
             "expected an S3 event notification"),
        Case("MinIO record that is a string", _minio({"Records": ["s3:ObjectCreated:Put"]}), 422, "record 0"),
        Case("MinIO record whose bucket name is a number", _minio({"Records": [
            {"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": 7}, "object": {"key": "a.jpg"}}}]}),
            422, "record 0"),
        Case("MinIO delivery without a key", _no_key("POST", "/v1/events/minio", b'{"Records": []}'), 401,
             "invalid API key"),
        Case("S3 event with Records as an object", _post_json("/v1/s3-events", '{"Records": {"0": {}}}'), 422,
             "expected an S3 event notification"),
        Case("S3 event for the output bucket", lambda http, url: http.post("/v1/s3-events", json={"Records": [
            _event("plateveil-concealed", "concealed/2026/01/01/x.jpg")]}), 202,
            check_answer=_no_job("object is in the output bucket")),
        Case("S3 event for another key's upload, versionId made up", lambda http, url: http.post(
            "/v1/s3-events", json={"Records": [{"eventName": "ObjectCreated:Put", "s3": {
                "bucket": {"name": ORIGINALS}, "object": {"key": "originals/2026/01/01/0123.jpg", "versionId": "v9"}}}]}),
            202, check_answer=_no_job("no such object, or this API key may not read it")),
        Case("S3 event with a NUL in the key", lambda http, url: http.post("/v1/s3-events", json={"Records": [
            _event(ORIGINALS, "a%00b.jpg")]}), 422, "record 0"),
        Case("SNS message while SNS intake is off", _no_key("POST", "/v1/events/sns", b'{"Type": "Notification"}'),
             404, "SNS intake is off"),
        Case("400 KB SNS body", _no_key("POST", "/v1/events/sns", b"{" + b" " * 400_000 + b"}"), 413, "larger than"),
        Case("zero-byte photo", _upload(b""), 415, "not a supported image"),
        Case("wrong magic (text named .jpg)", _upload(b"hello, I am text" * 20), 415, "unknown signature"),
        Case("GIF", _upload(b"GIF89a" + b"\0" * 64, "a.gif"), 415),
        Case("HEIC signature", _upload(b"\0\0\0\x18ftypheic" + b"\0" * 64, "a.heic"), 415),
        Case("animated WebP", _upload(animated("WEBP"), "a.webp"), 415, "animated WebP"),
        Case("animated PNG (APNG)", _upload(animated("PNG"), "a.png"), 415, "animated PNG"),
        Case("raw body that is not an image type", lambda http, url: http.post(
            "/v1/photos", content=_jpeg(), headers={"Content-Type": "application/octet-stream"}), 422),
        Case("unknown style", _upload(_jpeg(), style="sparkles"), 422, "valid styles"),
        Case("job id with path characters", lambda http, url: http.get("/v1/jobs/..%2F..%2Fetc"), 404),
        # -- accepted, then failed by the worker with a reason ---------------------------------------
        Case("pixel bomb (30000x30000 header)", _upload(pixel_bomb_png(), "a.png"), 202, "too large", "failed"),
        Case("7070x7070 RGBA PNG", _upload(flat_png(7070, 7070, 6, 8), "a.png"), 202, "decode budget", "failed"),
        Case("7070x7070 16-bit RGBA PNG", _upload(flat_png(7070, 7070, 6, 16), "a.png"), 202, "decode budget",
             "failed"),
        Case("truncated JPEG", _upload(truncated), 202, "truncated", "failed"),
        Case("truncated PNG", _upload(png[: len(png) // 2], "a.png"), 202, "png", "failed"),
        Case("JPEG magic only", _upload(b"\xff\xd8\xff\xe0"), 202, "jpeg", "failed"),
        Case("PNG signature then junk", _upload(b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, "a.png"), 202, "png", "failed"),
        Case("BMP claiming 40000x40000", _upload(bmp_bomb(), "a.bmp"), 202, "", "failed"),
        # -- accepted and concealed, the dangerous part dropped ---------------------------------------
        Case("polyglot JPEG + HTML/ZIP trailer", _upload(polyglot_jpeg()), 202, job="done",
             check_output=lambda out: b"POLYGLOT" not in out and b"<script>" not in out),
        Case("1 MB junk ICC profile", _upload(junk_icc_png(), "a.png"), 202, job="done",
             check_output=lambda out: b"iCCP" not in out and len(out) < 500_000),
        Case("junk EXIF segment", _upload(junk_exif_jpeg()), 202, job="done",
             check_output=lambda out: b"Exif" not in out),
        Case("6000x4000 JPEG over the worker's decode budget", _upload(big_flat_jpeg()), 202, job="done",
             check_output=lambda out: Image.open(io.BytesIO(out)).size == (3000, 2000)),
    ]


# -- the review pages (issue 36) ---------------------------------------------------------------------
def _anon(method: str, path: str, **kwargs: Any) -> Callable[[Any, str], Any]:
    """Sent without the reviewer's session (a client of its own)."""
    import httpx

    def send(http: Any, url: str) -> Any:
        with httpx.Client(base_url=url, timeout=30) as anon:
            return anon.request(method, path, **kwargs)
    return send


def _correct(job_id: str, body: Any = None, content: bytes | None = None, **headers: str) -> Callable[[Any, str], Any]:
    path = f"/review/api/jobs/{job_id}/corrections"
    if content is not None:
        return lambda http, url: http.post(path, content=content, headers=headers)
    return lambda http, url: http.post(path, json=body, headers=headers)


def review_cases(job_id: str, api_key: str) -> list[Case]:
    """Bad input to the reviewer login, sessions, the review pages and API, and the flag call; sent with
    a logged-in reviewer's client (cookie + CSRF header) unless the case says otherwise. ``job_id``: a
    done job; nothing here may change it. The answers are HTML for pages and JSON elsewhere; ``reason``
    is a phrase of either."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    square = [[10, 10], [60, 10], [60, 40], [10, 40]]
    bearer = {"Authorization": f"Bearer {api_key}"}
    flag = f"/v1/jobs/{job_id}/flag"
    return [
        Case("16 MB login form", _anon("POST", "/review/login", content=b"key=" + b"a" * (16 * 2**20), headers=form),
             413, "larger than"),
        Case("login key of 400 KB", _anon("POST", "/review/login", data={"name": "reviewer", "key": "k" * 400_000}),
             413, "larger than"),
        Case("login name of 10,000 characters", _anon("POST", "/review/login", data={"name": "n" * 10_000, "key": "x"}),
             401, "wrong reviewer name or key"),
        Case("login form of invalid UTF-8", _anon("POST", "/review/login", content=b"name=\xff\xfe&key=\xc3(",
                                                  headers=form), 401, "wrong reviewer name or key"),
        Case("login as JSON, not a form", _anon("POST", "/review/login", json={"name": "reviewer", "key": "x" * 40}),
             401, "wrong reviewer name or key"),
        Case("login from another site", _anon("POST", "/review/login", data={"name": "reviewer", "key": "x"},
                                              headers={"Origin": "https://evil.example"}), 403, "own login form"),
        Case("session cookie of 8 KB", _anon("GET", "/review/static/review.js",
                                             cookies={"plateveil_review": "A" * 8000}), 401, "login required"),
        Case("forged signed cookie (the old format)", _anon(
            "GET", "/review/static/review.js", cookies={"plateveil_review": "eyJuIjoicmV2aWV3ZXIifQ.Z0.sig"}),
            401, "login required"),
        Case("review API without a session", _anon("POST", f"/review/api/jobs/{job_id}/accept"), 401,
             "login required"),
        Case("POST without the CSRF token", lambda http, url: http.post(
            f"/review/api/jobs/{job_id}/accept", headers={"X-CSRF-Token": ""}), 403, "CSRF"),
        Case("POST from another origin", lambda http, url: http.post(
            f"/review/api/jobs/{job_id}/accept", headers={"Origin": "https://evil.example"}), 403, "CSRF"),
        Case("correction nested 20,000 deep", _correct(job_id, content=b"[" * 20_000 + b"]" * 20_000,
                                                       **{"Content-Type": "application/json"}), 422, "nested deeper"),
        Case("correction that is not JSON", _correct(job_id, content=b"revision=0", **{"Content-Type": "text/plain"}),
             422, "expected a JSON body"),
        Case("correction as a JSON list", _correct(job_id, [1, 2, 3]), 422, "expected a JSON object"),
        Case("correction with unknown fields", _correct(job_id, {"revision": 0, "__proto__": {}}), 422,
             "unknown fields"),
        Case("correction revision as a string", _correct(job_id, {"revision": "0"}), 422, "revision"),
        Case("correction with 10,000 polygons", _correct(job_id, {"revision": 0, "add": [square] * 10_000}), 413,
             "larger than"),
        Case("correction with 500 polygons", _correct(job_id, {"revision": 0, "add": [square] * 500}), 422,
             "at most"),
        Case("correction polygon of 3 corners", _correct(job_id, {"revision": 0, "add": [square[:3]]}), 422,
             "4 points"),
        Case("correction corner NaN", _correct(job_id, content=b'{"revision": 0, "add": [[[NaN, 1], [60, 10], '
                                               b'[60, 40], [10, 40]]]}', **{"Content-Type": "application/json"}),
             422, ""),
        Case("correction corners a billion pixels out", _correct(job_id, {"revision": 0, "add": [
            [[-1e9, -1e9], [1e9, -1e9], [1e9, 1e9], [-1e9, 1e9]]]}), 422, ""),
        Case("correction removing plate 1,000,000", _correct(job_id, {"revision": 0, "remove": [1_000_000]}), 422,
             ""),
        Case("correction removing an index twice", _correct(job_id, {"revision": 0, "remove": [0, 0]}), 422, "twice"),
        Case("correction with an unknown style", _correct(job_id, {"revision": 0, "style": "sparkles"}), 422,
             "valid styles"),
        Case("correction note of 10,000 characters", _correct(job_id, {"revision": 0, "note": "n" * 10_000}), 422,
             "at most 500"),
        Case("correction of a stale revision", _correct(job_id, {"revision": 99, "add": [square]}), 409, ""),
        Case("correction of an unknown job", _correct("0" * 32, {"revision": 0}), 404, "no finished job"),
        Case("accept of an unknown job", lambda http, url: http.post("/review/api/jobs/" + "f" * 32 + "/accept"),
             404, "no finished job"),
        Case("job page with path characters", lambda http, url: http.get("/review/jobs/..%2F..%2Fetc%2Fpasswd"),
             404, ""),
        Case("job page id of 2,000 characters", lambda http, url: http.get("/review/jobs/" + "a" * 2000), 404, ""),
        Case("original photo of an unknown job", lambda http, url: http.get(f"/review/jobs/{'0' * 32}/original"),
             404, ""),
        Case("queue page 0", lambda http, url: http.get("/review?page=0"), 422, ""),
        Case("queue page 10^30", lambda http, url: http.get("/review?page=" + "1" + "0" * 30), 200, ""),
        Case("queue date 2026-13-45x", lambda http, url: http.get("/review?date=2026-13-45x"), 422, "YYYY-MM-DD"),
        Case("queue state 'everything'", lambda http, url: http.get("/review?state=everything"), 422, "state"),
        Case("static file ../auth.py", lambda http, url: http.get("/review/static/..%2Fauth.py"), 404, ""),
        Case("flag reason of 501 characters", lambda http, url: http.post(flag, json={"reason": "r" * 501},
                                                                          headers=bearer), 422, ""),
        Case("flag reason of blanks", lambda http, url: http.post(flag, json={"reason": " \t "}, headers=bearer), 422,
             "blank"),
        Case("flag of an unknown job", lambda http, url: http.post("/v1/jobs/" + "0" * 32 + "/flag",
                                                                   json={"reason": "x"}, headers=bearer), 404, ""),
        Case("flag with a reviewer session instead of a key", lambda http, url: http.post(flag, json={"reason": "x"}),
             401, "API key"),
    ]
