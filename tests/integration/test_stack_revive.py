"""``make up`` over a half-dead local stack (issue 36, finding 6): it used to start a new stack over the
old one, wiping every job record, the dead letters and the S3 objects and printing a new API key. Now,
with state present and a service dead, it restarts exactly what is missing (same ports, data, keys) and
says so; when it cannot, it refuses with the command that would. Run with the real command line
(``python -m plateveil_ops.stack up`` = ``make up``) on a stack of its own."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from plateveil.keys import JOB_PREFIX as KEY_PREFIX
from plateveil_ops.stack import ORIGINALS_BUCKET, Stack

pytestmark = pytest.mark.integration


def _stack_cmd(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "plateveil_ops.stack", *args, "--state-dir", str(state)],
                          capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[2])


def _values(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line and not line.startswith("#"))


def _pid(state: Path, name: str) -> int:
    services = json.loads((state / "state.json").read_text())["services"]
    return next(int(s["pid"]) for s in services if s["name"] == name)


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists() and \
            "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:1]:
        time.sleep(0.05)


def test_make_up_over_a_half_dead_stack_keeps_every_record_and_the_key(tmp_path, car_jpeg):
    state = tmp_path / "stack"
    first = _stack_cmd(state, "up", "--pool", "solo", "--concurrency", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    try:
        env = _values(first.stdout)
        auth = {"Authorization": f"Bearer {env['API_KEY']}"}
        with httpx.Client(base_url=env["API_URL"], headers=auth, timeout=30) as http:
            ids = [http.post("/v1/photos", content=car_jpeg, headers={"Content-Type": "image/jpeg"}).json()["job_id"]
                   for _ in range(5)]
        # a second API key and a second reviewer for the running stack (docs: README "The local stack")
        partner = _stack_cmd(state, "add-key", "--id", "partner")
        alice = _stack_cmd(state, "add-key", "--review", "--id", "alice")
        assert partner.returncode == 0 and alice.returncode == 0, partner.stderr + alice.stderr
        partner_key = _values(partner.stdout)["API_KEY_PARTNER"]
        alice_key = _values(alice.stdout)["REVIEW_KEY_ALICE"]
        stack = Stack.load(state)
        assert stack is not None
        r = stack.redis_client()
        r.rpush("plateveil:test:dead-letters", "kept")   # any key: nothing may be wiped
        before = {k: r.hgetall(k) for k in r.scan_iter(match=KEY_PREFIX + "*")}
        assert len(before) >= 5
        originals = [o["Key"] for o in stack.s3_client().list_objects_v2(Bucket=ORIGINALS_BUCKET)["Contents"]]
        time.sleep(1.5)   # appendfsync everysec

        # 1. Redis dies (SIGKILL): make up restarts Redis alone, from its append-only file
        pid = _pid(state, "redis")
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid)
        again = _stack_cmd(state, "up")
        print("\n" + again.stdout)
        assert again.returncode == 0, again.stderr[-3000:]
        assert _values(again.stdout)["API_KEY"] == env["API_KEY"] and _values(again.stdout)["API_URL"] == env["API_URL"]
        assert "restarting only that" in again.stdout and "job records kept" in again.stdout
        assert "key" in again.stdout and "unchanged" in again.stdout
        r = stack.redis_client()
        after = {k: r.hgetall(k) for k in r.scan_iter(match=KEY_PREFIX + "*")}
        assert set(after) >= set(before)
        assert r.lrange("plateveil:test:dead-letters", 0, -1) == ["kept"]
        assert [o["Key"] for o in stack.s3_client().list_objects_v2(Bucket=ORIGINALS_BUCKET)["Contents"]] == originals
        assert _pid(state, "api") == Stack.load(state).service("api").pid   # the API was not restarted
        with httpx.Client(base_url=env["API_URL"], headers=auth, timeout=30) as http:
            assert all(http.get(f"/v1/jobs/{i}").status_code == 200 for i in ids)
        for key in (env["API_KEY"], partner_key):   # both keys still open the API (checks shown only with a key)
            assert "checks" in httpx.get(env["API_URL"] + "/healthz", timeout=10,
                                         headers={"Authorization": f"Bearer {key}"}).json()
        for name, key in (("reviewer", env["REVIEW_KEY"]), ("alice", alice_key)):
            assert httpx.post(env["API_URL"] + "/review/login", data={"name": name, "key": key},
                              timeout=10).status_code == 303

        # 2. a port taken while Redis is down: make up refuses and prints the command, deleting nothing
        pid = _pid(state, "redis")
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid)
        squatter = socket.socket()
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 30
        while True:   # the killed server's sockets may hold the port a moment (closing connections)
            try:
                squatter.bind(("127.0.0.1", stack.ports["redis"]))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        squatter.listen()
        try:
            refused = _stack_cmd(state, "up")
        finally:
            squatter.close()
        print(refused.stderr[-600:])
        assert refused.returncode == 1
        assert f"plateveil_ops.stack restart redis --state-dir {state}" in refused.stderr
        assert "nothing was deleted" in refused.stderr
        assert any((state / "redis").iterdir())
        fixed = _stack_cmd(state, "restart", "redis")
        assert fixed.returncode == 0, fixed.stderr[-2000:]
        assert set(after) <= set(stack.redis_client().scan_iter(match=KEY_PREFIX + "*"))

        # 3. the S3 server dies: its objects are gone (moto keeps them in memory) and make up says so plainly
        pid = _pid(state, "s3")
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid)
        s3_again = _stack_cmd(state, "up")
        print(s3_again.stdout)
        assert s3_again.returncode == 0, s3_again.stderr[-3000:]
        assert "GONE" in s3_again.stdout and "in memory only" in s3_again.stdout
        assert _values(s3_again.stdout)["API_KEY"] == env["API_KEY"]
        assert httpx.get(env["API_URL"] + "/healthz", timeout=10).status_code == 200   # buckets exist again
        assert len(list(stack.redis_client().scan_iter(match=KEY_PREFIX + "*"))) >= len(after)

        # 4. everything alive: make up only prints the stack
        alive = _stack_cmd(state, "up")
        assert alive.returncode == 0 and "restarting" not in alive.stdout
        assert _values(alive.stdout)["API_KEY"] == env["API_KEY"]
    finally:
        down = _stack_cmd(state, "down")
        assert down.returncode == 0, down.stderr
