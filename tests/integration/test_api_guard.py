"""The request guard over the real stack (uvicorn, Redis, S3): the key is checked before any body
byte is read, bodies are limited while they stream, stalled bodies are ended, and bad input is a
4xx with a reason. Raw sockets where a body must be announced but never sent."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import httpx
import pytest

from plateveil_ops.stack import ORIGINALS_BUCKET
from tests.conftest import MAX_UPLOAD_BYTES

pytestmark = pytest.mark.integration


def _raw(stack, head: str, body: bytes = b"", read_timeout: float = 15.0) -> tuple[int, bytes]:
    """Send ``head`` (request line + headers) and ``body`` on a fresh connection; the status and
    response body. The server may answer before the announced body has been sent."""
    url = urlsplit(stack.api_url)
    with socket.create_connection((url.hostname, url.port), timeout=read_timeout) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def _post_head(path: str, length: int | None, key: str | None, content_type: str = "application/json") -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: test", f"Content-Type: {content_type}"]
    if length is None:
        lines.append("Transfer-Encoding: chunked")
    else:
        lines.append(f"Content-Length: {length}")
    if key:
        lines.append(f"Authorization: Bearer {key}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("path", ["/v1/s3-events", "/v1/jobs", "/v1/photos"])
def test_no_key_is_401_before_the_body_is_read(stack, path):
    # 300 MB announced, 10 bytes sent: the answer comes without waiting for the rest
    status, body = _raw(stack, _post_head(path, 300_000_000, None, "multipart/form-data; boundary=x"), b"0123456789")
    assert status == 401
    assert json.loads(body) == {"detail": "missing or invalid API key"}
    status, _ = _raw(stack, _post_head(path, 300_000_000, "wrong-key"), b"{")
    assert status == 401


@pytest.mark.parametrize(("path", "limit"), [("/v1/s3-events", 64 * 1024), ("/v1/jobs", 64 * 1024),
                                             ("/v1/photos", MAX_UPLOAD_BYTES + 64 * 1024)])
def test_declared_length_over_the_limit_is_413_before_reading(stack, path, limit):
    status, body = _raw(stack, _post_head(path, limit + 1, stack.api_key), b"{")
    assert status == 413
    assert json.loads(body)["detail"] == f"request body larger than {limit} bytes"


def _chunked(total: int, piece: int = 32 * 1024) -> bytes:
    out = b""
    while total > 0:
        n = min(piece, total)
        out += f"{n:x}\r\n".encode() + b"[" * n + b"\r\n"
        total -= n
    return out


def test_chunked_json_body_is_cut_at_the_limit(stack):
    # no Content-Length: counted while it streams; 413 as soon as 64 KiB are passed
    status, body = _raw(stack, _post_head("/v1/s3-events", None, stack.api_key), _chunked(200 * 1024))
    assert status == 413 and "larger than 65536 bytes" in json.loads(body)["detail"]


def test_chunked_photo_body_is_cut_at_the_limit(stack):
    head = _post_head("/v1/photos", None, stack.api_key, "image/jpeg")
    status, body = _raw(stack, head, _chunked(MAX_UPLOAD_BYTES + 200 * 1024, 256 * 1024))
    assert status == 413


def test_stalled_body_is_ended_with_408(stack):
    # 1000 bytes announced, 10 sent, then nothing: the stack's idle timeout is 2 s
    status, body = _raw(stack, _post_head("/v1/photos", 1000, stack.api_key, "image/jpeg"), b"\xff\xd8\xff" + b"0" * 7)
    assert status == 408
    assert "stalled" in json.loads(body)["detail"]
    status, _ = _raw(stack, _post_head("/v1/jobs", 1000, stack.api_key), b'{"bucket"')
    assert status == 408


@pytest.mark.parametrize(("payload", "reason"), [
    ("[" * 20_000 + "]" * 20_000, "nested deeper than"),
    ('{"bucket": "b", "key": "k", "metadata": {"a": ' + "9" * 5000 + "}}", "number longer than"),
    ('{"bucket": 1e99999999999999999999999999999999999999999999999, "key": "k"}', "number longer than"),
])
def test_hostile_json_is_422(client, payload, reason):
    resp = client.http.post("/v1/jobs", content=payload, headers={"Content-Type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert reason in resp.json()["detail"]
    resp = client.http.post("/v1/s3-events", content=payload, headers={"Content-Type": "application/json"})
    assert resp.status_code == 422


@pytest.mark.parametrize(("metadata", "reason"), [
    ("[" * 100_000, "metadata must be at most"),
    ('{"a": ' + "[" * 1000 + "]" * 1000 + "}", "nested deeper"),
    ('{"n": ' + "9" * 5000 + "}", "metadata must be at most"),
    ('{"n": ' + "9" * 300 + "}", "number longer than"),
    ('{"note": "a\\r\\nX-Amz-Meta-Evil: 1"}', "no CR, LF"),
    ('{"Bad Name": "x"}', "bad metadata field"),
    ('"just a string"', "metadata must be a JSON object"),
    ("{not json", "invalid JSON"),
])
def test_bad_metadata_is_422_with_a_reason(client, car_jpeg, metadata, reason):
    resp = client.http.post("/v1/photos", files={"file": ("a.jpg", car_jpeg)}, data={"metadata": metadata})
    assert resp.status_code == 422, resp.text
    assert reason in resp.json()["detail"]


@pytest.mark.parametrize("bucket", ["UPPER_case!!", "a/../b", "ab", "-bad-", "a..b", "192.168.1.1", "x" * 64])
def test_bad_bucket_names_are_422_before_any_s3_call(client, bucket):
    resp = client.http.post("/v1/jobs", json={"bucket": bucket, "key": "car.jpg"})
    assert resp.status_code == 422, resp.text
    event = {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": bucket},
                                                                   "object": {"key": "car.jpg"}}}]}
    resp = client.http.post("/v1/s3-events", json=event)
    assert resp.status_code == 422 and "invalid bucket name" in resp.json()["detail"]


@pytest.mark.parametrize("key", ["../etc/passwd", "a/./b", "/abs.jpg", "line\nbreak.jpg", "x" * 1025])
def test_bad_keys_are_422(client, key):
    resp = client.http.post("/v1/jobs", json={"bucket": ORIGINALS_BUCKET, "key": key})
    assert resp.status_code == 422, resp.text


def test_crlf_in_job_metadata_is_422(client):
    resp = client.http.post("/v1/jobs", json={"bucket": ORIGINALS_BUCKET, "key": "k.jpg",
                                              "metadata": {"note": "a\r\nb"}})
    assert resp.status_code == 422 and "no CR, LF" in resp.json()["detail"]


def test_docs_and_openapi_need_the_key(stack):
    for path in ("/docs", "/openapi.json", "/redoc"):
        assert httpx.get(stack.api_url + path).status_code == 401


def test_answers_name_no_internal_address(stack, client):
    """No answer carries the S3 endpoint, the Redis host:port, or a Python repr."""
    texts = [httpx.get(stack.api_url + "/healthz").text,
             client.http.get("/healthz").text,
             client.http.post("/v1/jobs", json={"bucket": "UPPER_case!!", "key": "k"}).text,
             client.http.get("/v1/jobs/" + "f" * 32).text]
    for text in texts:
        assert str(stack.ports["s3"]) not in text and str(stack.ports["redis"]) not in text
        assert "127.0.0.1" not in text and " at 0x" not in text
