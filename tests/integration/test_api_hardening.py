"""The second hardening round (issue 36, findings 4, 5 and 7) against a real upload service (uvicorn as
deployed: the header-timeout protocol, ``--proxy-headers``) on a light stack of its own (Redis, moto S3,
the API; no worker), so pausing its S3 server or exhausting its login limits touches no other test:

* reviewer login: 300 wrong keys meet a 429 + Retry-After (per client IP, and per reviewer name from
  many addresses); a logged-out cookie is refused (401); the cookie is ``Secure`` when a trusted proxy
  says ``X-Forwarded-Proto: https`` and not when an untrusted one says it;
* S3 paused (SIGSTOP of the moto server this fixture started): uploads get their 503 + Retry-After
  within 5 s and status reads (Redis only) stay under 0.5 s; the numbers are printed;
* half-sent request heads are closed (408) within the header timeout.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from plateveil_ops.stack import HEADER_TIMEOUT_PROTOCOL, REVIEWER, Stack, free_port, stop_group, wait_until
from producer.apikeys import hash_key
from producer.review.auth import COOKIE_NAME, SESSION_PREFIX

pytestmark = pytest.mark.integration

HEADER_TIMEOUT_S = 2.0
ALICE_KEY = secrets.token_urlsafe(32)
CSRF = re.compile(r'<meta name="csrf-token" content="([0-9a-f]+)">')


def _own_environ() -> dict[str, str]:
    """The process environment without the PLATEVEIL_* of the session stack (tests/conftest.py raises its
    limits and shortens its body timeout; this module needs the defaults)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PLATEVEIL_")}


@pytest.fixture(scope="module")
def light(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    review_key = secrets.token_urlsafe(32)
    env = {"PLATEVEIL_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S), "PLATEVEIL_RATE_PER_S": "1000",
           "PLATEVEIL_RATE_BURST": "1000", "PLATEVEIL_KEY_MAX_INFLIGHT": "1000",
           "PLATEVEIL_REVIEW_KEY_HASHES": f"{REVIEWER}:{hash_key(review_key)},alice:{hash_key(ALICE_KEY)}"}
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(_own_environ())   # the services inherit os.environ: defaults for everything not in env
    try:
        with Stack(state_dir=tmp_path_factory.mktemp("hardening"), review_key=review_key, with_worker=False,
                   with_registry=False, extra_env=env) as running:
            os.environ.clear()
            os.environ.update(saved)
            yield running
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _ip() -> str:
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"


def _login(http: httpx.Client, name: str, key: str, ip: str, **headers: str) -> httpx.Response:
    return http.post("/review/login", data={"name": name, "key": key, "next": "/review"},
                     headers={"X-Forwarded-For": ip, **headers})


# -- reviewer login ----------------------------------------------------------------------------------
def test_300_wrong_reviewer_keys_meet_a_429_with_retry_after(light):
    ip = _ip()
    codes: list[int] = []
    t0 = time.perf_counter()
    with httpx.Client(base_url=light.api_url, timeout=30) as http:
        for _ in range(300):
            resp = _login(http, "alice", secrets.token_urlsafe(32), ip)
            codes.append(resp.status_code)
            if resp.status_code == 429:
                retry_after = int(resp.headers["Retry-After"])
        took = time.perf_counter() - t0
        # while limited, even the right key is not compared: the answer is the same 429
        right = _login(http, "alice", ALICE_KEY, ip)
    first = codes.index(429) if 429 in codes else None
    print(f"\n300 wrong reviewer keys from one address in {took:.2f} s: {codes.count(401)} x 401, "
          f"{codes.count(429)} x 429 (first at attempt {None if first is None else first + 1}), "
          f"Retry-After {retry_after if first is not None else '-'} s")
    assert set(codes) <= {401, 429}
    assert first is not None and first <= 10, codes[:15]           # PLATEVEIL_REVIEW_LOGIN_BURST_PER_IP = 10
    assert codes[first:] == [429] * (300 - first)
    assert retry_after >= 1
    assert right.status_code == 429 and "too many login attempts" in right.text


def test_guessing_one_name_from_many_addresses_meets_the_per_name_limit(light):
    name = "nobody-" + secrets.token_hex(3)   # a name that does not exist is limited the same way
    with httpx.Client(base_url=light.api_url, timeout=30) as http:
        codes = [_login(http, name, secrets.token_urlsafe(32), _ip()).status_code for _ in range(25)]
        other = _login(http, "someone-else", secrets.token_urlsafe(32), _ip()).status_code
    print(f"\none name from 25 addresses: {codes.count(401)} x 401 then {codes.count(429)} x 429")
    assert codes[:20] == [401] * 20 and codes[20:] == [429] * 5   # PLATEVEIL_REVIEW_LOGIN_BURST_PER_NAME = 20
    assert other == 401   # another name (and address) is not locked out


def test_a_logged_out_cookie_no_longer_works(light):
    ip = _ip()
    with httpx.Client(base_url=light.api_url, timeout=30) as http:
        resp = _login(http, REVIEWER, light.review_key, ip)
        assert resp.status_code == 303, resp.text
        cookie = http.cookies.get(COOKIE_NAME, path="/review")
        assert cookie and len(cookie) >= 40
        page = http.get("/review", headers={"Accept": "text/html", "X-Forwarded-For": ip})
        assert page.status_code == 200
        csrf = CSRF.search(page.text).group(1)
        sessions = list(light.redis_client().scan_iter(match=SESSION_PREFIX + "*"))
        assert sessions and not any(cookie in s for s in sessions)   # stored under its hash, never itself
        out = http.post("/review/logout", headers={"X-CSRF-Token": csrf, "X-Forwarded-For": ip})
        assert out.status_code == 303 and out.headers["location"] == "/review/login"
    # the old cookie, replayed by someone who kept it: refused on every path
    with httpx.Client(base_url=light.api_url, timeout=30, cookies={COOKIE_NAME: cookie}) as replay:
        assert replay.get("/review/static/review.js").status_code == 401
        assert replay.get("/review", headers={"Accept": "text/html"}).status_code == 303
        assert replay.post("/review/api/jobs/x/accept", headers={"X-CSRF-Token": csrf}).status_code == 401


def _secure(resp: httpx.Response) -> bool:
    cookie = resp.headers["set-cookie"]
    assert cookie.startswith(COOKIE_NAME + "=")
    return "secure" in [part.strip().lower() for part in cookie.split(";")]


def test_cookie_is_secure_when_a_trusted_proxy_says_https(light):
    with httpx.Client(base_url=light.api_url, timeout=30) as http:
        # the stack's uvicorn: --proxy-headers, FORWARDED_ALLOW_IPS unset = 127.0.0.1 (the test's address)
        assert _secure(_login(http, REVIEWER, light.review_key, _ip(), **{"X-Forwarded-Proto": "https"}))
        assert not _secure(_login(http, REVIEWER, light.review_key, _ip()))


def test_cookie_is_not_secure_when_an_untrusted_proxy_says_https(light, tmp_path):
    """The same header from an address not in FORWARDED_ALLOW_IPS is ignored (a client cannot claim https;
    nor can it choose its address for the login limits)."""
    port = free_port()
    log = tmp_path / "api.log"
    env = _own_environ() | light.env | {"FORWARDED_ALLOW_IPS": "192.0.2.10", "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "producer.app:app", "--host", "127.0.0.1",
                                 "--port", str(port), "--http", HEADER_TIMEOUT_PROTOCOL, "--proxy-headers",
                                 "--log-level", "warning"], stdout=fh, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(url + "/healthz", timeout=2).status_code == 200, 60, "api", proc, log)
        with httpx.Client(base_url=url, timeout=30) as http:
            assert not _secure(_login(http, REVIEWER, light.review_key, _ip(), **{"X-Forwarded-Proto": "https"}))
    finally:
        stop_group(proc.pid, "producer.app:app")
        proc.wait(timeout=10)


# -- S3 outage: fail fast ------------------------------------------------------------------------------
def test_s3_paused_uploads_get_503_within_5_s_and_status_reads_stay_fast(light, car_jpeg):
    auth = {"Authorization": f"Bearer {light.api_key}"}
    with httpx.Client(base_url=light.api_url, timeout=60, headers=auth) as http:
        ok = http.post("/v1/photos", content=car_jpeg, headers={"Content-Type": "image/jpeg"})
        assert ok.status_code == 202, ok.text
        job_id = ok.json()["job_id"]
        reads: list[float] = []
        stop = threading.Event()

        def read_status() -> None:
            with httpx.Client(base_url=light.api_url, timeout=60, headers=auth) as reader:
                while not stop.is_set():
                    t0 = time.perf_counter()
                    resp = reader.get(f"/v1/jobs/{job_id}")
                    reads.append(time.perf_counter() - t0)
                    assert resp.status_code == 200
                    time.sleep(0.05)

        uploads: list[tuple[int, float, str]] = []
        pid = light.service("s3").pid
        os.kill(pid, signal.SIGSTOP)
        reader = threading.Thread(target=read_status, daemon=True)
        try:
            reader.start()
            for _ in range(8):   # one after another: the first ones wait for the timeout, then the breaker
                t0 = time.perf_counter()
                resp = http.post("/v1/photos", content=car_jpeg, headers={"Content-Type": "image/jpeg"})
                uploads.append((resp.status_code, time.perf_counter() - t0, resp.headers.get("Retry-After", "")))
        finally:
            stop.set()
            reader.join(timeout=30)
            os.kill(pid, signal.SIGCONT)
    print("\nS3 paused: uploads " + ", ".join(f"{c} in {s:.2f} s (Retry-After {r})" for c, s, r in uploads) +
          f"; {len(reads)} status reads: max {max(reads) * 1000:.0f} ms, "
          f"p95 {sorted(reads)[int(len(reads) * 0.95)] * 1000:.0f} ms, p50 {sorted(reads)[len(reads) // 2] * 1000:.0f} ms")
    assert [c for c, _, _ in uploads] == [503] * 8
    assert max(s for _, s, _ in uploads) < 5.0
    assert all(int(r) >= 1 for _, _, r in uploads)
    assert max(s for _, s, _ in uploads[4:]) < 0.5   # the breaker is open: at once
    # the target is 0.5 s; on 2 shared cores under the whole suite one read may hiccup, so the bound on
    # the slowest is generous and the 95th percentile holds the target
    assert len(reads) >= 5 and sorted(reads)[int(len(reads) * 0.95)] < 0.5 and max(reads) < 2.0
    # S3 back: after the breaker's open time a trial call closes it and uploads are accepted again
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=light.api_url, timeout=60, headers=auth) as http:
        while True:
            resp = http.post("/v1/photos", content=car_jpeg, headers={"Content-Type": "image/jpeg"})
            if resp.status_code == 202 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert resp.status_code == 202, resp.text


# -- header-read timeout -------------------------------------------------------------------------------
def _open(light: Stack) -> socket.socket:
    return socket.create_connection(("127.0.0.1", light.ports["api"]), timeout=HEADER_TIMEOUT_S + 10)


def _closed_after(sock: socket.socket, t0: float) -> tuple[float, bytes]:
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return time.monotonic() - t0, data
        data += chunk


def test_a_half_sent_request_is_closed_within_the_header_timeout(light):
    sock = _open(light)
    t0 = time.monotonic()
    sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")   # no blank line: the head never ends
    took, answer = _closed_after(sock, t0)
    sock.close()
    print(f"\nhalf-sent request head closed after {took:.2f} s (limit {HEADER_TIMEOUT_S} s): {answer[:30]!r}")
    assert HEADER_TIMEOUT_S - 0.5 <= took <= HEADER_TIMEOUT_S + 2
    assert answer.startswith(b"HTTP/1.1 408")


def test_a_dripped_request_head_does_not_extend_the_timeout(light):
    sock = _open(light)
    t0 = time.monotonic()
    took: float | None = None
    try:
        for byte in b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            sock.sendall(bytes([byte]))
            time.sleep(0.2)
    except OSError:   # the server closed it while we were still dripping
        took = time.monotonic() - t0
    if took is None:
        took, _ = _closed_after(sock, t0)
    sock.close()
    assert took <= HEADER_TIMEOUT_S + 2


def test_many_half_open_connections_are_all_closed_and_the_service_still_answers(light):
    socks = [_open(light) for _ in range(200)]
    for s in socks:
        s.sendall(b"POST /v1/photos HTTP/1.1\r\nHost: x\r\nContent-Le")
    t0 = time.monotonic()
    assert httpx.get(light.api_url + "/livez", timeout=5).status_code == 200   # not starved meanwhile
    times = [_closed_after(s, t0)[0] for s in socks]
    for s in socks:
        s.close()
    print(f"\n200 half-open connections: all closed, the last after {max(times):.2f} s")
    assert max(times) <= HEADER_TIMEOUT_S + 3


def test_keep_alive_requests_and_slow_bodies_are_not_cut_by_the_header_timeout(light):
    with httpx.Client(base_url=light.api_url, timeout=30) as http:
        for _ in range(3):   # one connection, requests spaced past nothing: each head arrives at once
            assert http.get("/livez").status_code == 200
    # a body may take longer than the header timeout (the guard's own body limits apply to it)
    sock = _open(light)
    body = b'{"bucket": "b", "key": "k"}'
    sock.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + light.api_key.encode() +
                 b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
    time.sleep(HEADER_TIMEOUT_S + 0.5)
    sock.sendall(body)
    answer = sock.recv(4096)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 "), answer[:40]
    assert not answer.startswith(b"HTTP/1.1 408")
