"""Re-run issue 36's findings 4, 5 and 7 against a running stack (``make up``; ``source .stack/env``) and print
the numbers; findings 6 and 8 are re-run by the shell lines in the notes. Works against the code before the
fixes too (it sends the reviewer's name as well as the key; older code ignores the name).

    .venv/bin/python scripts/reliability/probe_hardening.py [--state-dir .stack] [--only login,s3,headers]

Login: 300 wrong reviewer keys from one address (statuses, time), a logged-out cookie replayed, the cookie's
``Secure`` flag with ``X-Forwarded-Proto: https`` from 127.0.0.1. S3: SIGSTOP the stack's S3 server for the
time it takes 6 uploads one after another while a second client reads a job's status every 50 ms; SIGCONT.
Headers: 300 half-sent requests held open, how many the server has closed after 15 s and after 30 s.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from plateveil_ops.stack import REVIEWER, Stack  # noqa: E402


def login(http: httpx.Client, key: str, **headers: str) -> httpx.Response:
    return http.post("/review/login", data={"name": REVIEWER, "key": key, "next": "/review"}, headers=headers)


def probe_login(stack: Stack) -> None:
    ip = {"X-Forwarded-For": f"10.9.{secrets.randbelow(250)}.{secrets.randbelow(250)}"}
    with httpx.Client(base_url=stack.api_url, timeout=30) as http:
        secure = "secure" in login(http, stack.review_key, **ip, **{"X-Forwarded-Proto": "https"}).headers.get(
            "set-cookie", "").lower()
    with httpx.Client(base_url=stack.api_url, timeout=30) as http:   # plain http: the cookie comes back
        resp = login(http, stack.review_key, **ip)
        cookie = http.cookies.get("plateveil_review")
        page = http.get("/review", headers={"Accept": "text/html", **ip})
        token = page.text.split('name="csrf-token" content="', 1)[-1].split('"', 1)[0]
        out = http.post("/review/logout", headers={"X-CSRF-Token": token, **ip})
    with httpx.Client(base_url=stack.api_url, timeout=30, cookies={"plateveil_review": cookie or ""}) as replay:
        after = replay.get("/review/static/review.js").status_code
    print(f"login: Secure with X-Forwarded-Proto https from 127.0.0.1: {secure}; login {resp.status_code}, page "
          f"{page.status_code}, logout {out.status_code}; the old cookie replayed after logout: {after}")
    codes: dict[int, int] = {}
    first_429 = None
    t0 = time.perf_counter()
    with httpx.Client(base_url=stack.api_url, timeout=30) as http:
        for n in range(300):
            code = login(http, secrets.token_urlsafe(24)).status_code
            codes[code] = codes.get(code, 0) + 1
            if code == 429 and first_429 is None:
                first_429 = n + 1
    print(f"login: 300 wrong reviewer keys in {time.perf_counter() - t0:.2f} s: {codes}, first 429 at "
          f"{first_429}")


def probe_s3(stack: Stack, photo: bytes) -> None:
    auth = {"Authorization": f"Bearer {stack.api_key}"}
    with httpx.Client(base_url=stack.api_url, timeout=120, headers=auth) as http:
        job = http.post("/v1/photos", content=photo, headers={"Content-Type": "image/jpeg"}).json()["job_id"]
        reads: list[float] = []
        stop = threading.Event()

        def reader() -> None:
            with httpx.Client(base_url=stack.api_url, timeout=120, headers=auth) as r:
                while not stop.is_set():
                    t = time.perf_counter()
                    r.get(f"/v1/jobs/{job}")
                    reads.append(time.perf_counter() - t)
                    time.sleep(0.15)   # under the key's default rate (10/s) with the uploads

        pid = stack.service("s3").pid
        os.kill(pid, signal.SIGSTOP)
        thread = threading.Thread(target=reader, daemon=True)
        uploads = []
        try:
            thread.start()
            for _ in range(6):
                t = time.perf_counter()
                code = http.post("/v1/photos", content=photo, headers={"Content-Type": "image/jpeg"}).status_code
                uploads.append(f"{code} in {time.perf_counter() - t:.1f} s")
        finally:
            stop.set()
            thread.join(timeout=120)
            os.kill(pid, signal.SIGCONT)
    print(f"s3 paused: uploads {', '.join(uploads)}; {len(reads)} status reads, max {max(reads):.2f} s, "
          f"p50 {sorted(reads)[len(reads) // 2]:.3f} s")


def probe_headers(stack: Stack) -> None:
    socks = []
    for _ in range(300):
        s = socket.create_connection(("127.0.0.1", stack.ports["api"]), timeout=60)
        s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        s.setblocking(False)
        socks.append(s)
    t0 = time.monotonic()

    def still_open() -> int:
        n = 0
        for s in socks:
            try:
                if s.recv(4096) == b"":
                    continue
                n += 0   # an answer (408) came: the server closes right after
            except BlockingIOError:
                n += 1
            except OSError:
                continue
        return n

    for mark in (15, 30):
        time.sleep(max(0.0, t0 + mark - time.monotonic()))
        print(f"headers: {still_open()} of 300 half-sent requests still open after {mark} s")
    for s in socks:
        s.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state-dir", type=Path, default=Path(".stack"))
    ap.add_argument("--only", default="login,s3,headers")
    args = ap.parse_args()
    stack = Stack.load(args.state_dir)
    if stack is None:
        print("no stack in", args.state_dir, file=sys.stderr)
        return 1
    from plateveil_ops.samples import render_scene

    only = set(args.only.split(","))
    if "login" in only:
        probe_login(stack)
    if "s3" in only:
        probe_s3(stack, render_scene(seed=3, size=(480, 360)).jpeg())
    if "headers" in only:
        probe_headers(stack)
    return 0


if __name__ == "__main__":
    sys.exit(main())
