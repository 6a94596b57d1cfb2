"""The issue-28 fault table, measured: one local stack like ``make up`` (prefork worker, production
settings: visibility timeout 90 s, reconciler every 30 s after 60 s), one fault per row injected
with real signals while uploads keep coming, every job counted.

    python scripts/reliability/fault_table.py [--rows all|kill-pool,kill-main,...] [--out runs/fault-table]

Rows: kill-pool (SIGKILL a pool process mid-job), kill-main (SIGKILL the worker main process,
restart 7 s later), redis-stop (SIGTERM Redis, 10 s, start again), redis-kill (SIGKILL Redis, start
again: the append-only file's one-second window), redis-pause (SIGSTOP 10 s), s3-down (SIGSTOP the
S3 server 30 s), api-kill (SIGKILL the API, restart), record-gone (status records deleted while
queued). For each: accepted (202), answered 503, done, failed by reason, lost or stuck (not
finished when the row ends), jobs with more than one completion event, and how long after the
fault the last job finished. Prints a Markdown table; ``<out>/fault_table.json`` has the details.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from plateveil.jobs import JobStore
from plateveil_ops.stack import Stack

logger = logging.getLogger("fault_table")
ROWS = ("kill-pool", "kill-main", "redis-stop", "redis-kill", "redis-pause", "s3-down", "api-kill", "record-gone")


class Load:
    """Uploads in a background thread (about ``rate`` per second) and counts the answers."""

    def __init__(self, stack: Stack, photo: bytes, rate: float) -> None:
        self.stack, self.photo, self.rate = stack, photo, rate
        self.accepted: list[str] = []
        self.unavailable = 0
        self.other: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def submit(self, client: httpx.Client) -> None:
        try:
            resp = client.post("/v1/photos", content=self.photo)
        except httpx.HTTPError as exc:
            self.other[type(exc).__name__] += 1
            return
        if resp.status_code == 202:
            self.accepted.append(resp.json()["job_id"])
        elif resp.status_code == 503:
            self.unavailable += 1
        else:
            self.other[str(resp.status_code)] += 1

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.stack.api_url, timeout=15, headers={
            "Authorization": f"Bearer {self.stack.api_key}", "Content-Type": "image/jpeg"})

    def _run(self) -> None:
        with self.client() as client:
            while not self._stop.wait(1.0 / self.rate):
                self.submit(client)

    def burst(self, n: int) -> None:
        with self.client() as client:
            for _ in range(n):
                self.submit(client)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def statuses(jobs: JobStore, ids: list[str]) -> dict[str, tuple[str | None, str | None]]:
    ids = list(ids)  # the upload thread may be appending
    pipe = jobs.client.pipeline()
    for job_id in ids:
        pipe.hmget(JobStore.key(job_id), ["status", "error"])
    return dict(zip(ids, [tuple(v) for v in pipe.execute()], strict=True))


def wait_running(jobs: JobStore, ids: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(st == "running" for st, _ in statuses(jobs, ids).values()):
            return
        time.sleep(0.01)


def settle(stack: Stack, ids: list[str], fault_at: float, timeout: float) -> dict[str, Any]:
    jobs = JobStore(stack.redis_client())
    deadline = time.monotonic() + timeout
    all_ended = float("nan")
    while time.monotonic() < deadline:
        try:
            st = statuses(jobs, ids)
        except Exception:  # Redis coming back
            time.sleep(0.5)
            continue
        if all(s in ("done", "failed") for s, _ in st.values()):
            all_ended = time.monotonic()
            break
        time.sleep(0.5)
    st = statuses(jobs, ids)
    events: Counter[str] = Counter()
    low = "-"
    while batch := jobs.read_events(low, count=5000):
        events.update(e.job_id for _, e in batch)
        low = "(" + batch[-1][0]
    failed = Counter((err or "(no reason)")[:90] for s, err in st.values() if s == "failed")
    return {
        "accepted": len(ids),
        "done": sum(1 for s, _ in st.values() if s == "done"),
        "failed": sum(failed.values()), "failed_by_reason": dict(failed),
        "lost_or_stuck": {i: s for i, (s, _) in st.items() if s not in ("done", "failed")},
        "events_not_one": sum(1 for i in ids if events[i] != 1 and st[i][0] in ("done", "failed")),
        "all_ended_after_fault_s": round(all_ended - fault_at, 1),
    }


def run_row(stack: Stack, row: str, photo: bytes, settle_s: float) -> dict[str, Any]:
    jobs = JobStore(stack.redis_client())
    with Load(stack, photo, rate=3.0) as load:
        load.burst(45)  # a queue to be in the middle of
        wait_running(jobs, load.accepted)
        fault_at = time.monotonic()
        if row == "kill-pool":
            worker = stack.service("worker").pid
            children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                        and _ppid(int(p.name)) == worker]
            os.kill(children[0], signal.SIGKILL)
            time.sleep(10)
        elif row == "kill-main":
            stack.kill("worker", signal.SIGKILL)
            time.sleep(7)
            stack.start_service("worker", timeout=120)
        elif row == "redis-stop":
            stack.stop_service("redis")
            time.sleep(10)
            stack.start_service("redis")
        elif row == "redis-kill":
            stack.kill("redis", signal.SIGKILL)
            time.sleep(2)
            stack.start_service("redis")
        elif row == "redis-pause":
            stack.kill("redis", signal.SIGSTOP)
            time.sleep(10)
            stack.kill("redis", signal.SIGCONT)
        elif row == "s3-down":
            stack.kill("s3", signal.SIGSTOP)
            time.sleep(30)
            stack.kill("s3", signal.SIGCONT)
        elif row == "api-kill":
            stack.kill("api", signal.SIGKILL)
            time.sleep(2)
            stack.start_service("api")
        elif row == "record-gone":
            queued = [i for i, (s, _) in statuses(jobs, load.accepted).items() if s == "queued"][:10]
            jobs.client.delete(*[JobStore.key(i) for i in queued])
            time.sleep(5)
        time.sleep(5)  # uploads go on after the fault
    ids = list(load.accepted)
    result = settle(stack, ids, fault_at, settle_s)
    return result | {"row": row, "answered_503": load.unavailable, "other_answers": dict(load.other)}


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="all", help=f"comma-separated, of: {', '.join(ROWS)}")
    parser.add_argument("--settle-s", type=float, default=240.0, help="wait this long for a row's jobs to end")
    parser.add_argument("--out", type=Path, default=Path("runs/fault-table"))
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the stack is stopped on a plain kill
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    rows = ROWS if args.rows == "all" else tuple(r.strip() for r in args.rows.split(","))
    unknown = set(rows) - set(ROWS)
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}; valid: {', '.join(ROWS)}")
    from plateveil_ops.samples import render_scene

    photo = render_scene(seed=3, size=(1600, 1200)).jpeg()
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    # production settings, but for the API's per-key rate limit (one client uploads all the load)
    with Stack(state_dir=args.out / "stack", pool="prefork", concurrency=1,
               extra_env={"PLATEVEIL_RATE_PER_S": "1000", "PLATEVEIL_RATE_BURST": "1000"}) as stack:
        for row in rows:
            logger.info("row %s", row)
            results.append(run_row(stack, row, photo, args.settle_s))
            logger.info("%s", json.dumps(results[-1]))
    (args.out / "fault_table.json").write_text(json.dumps(results, indent=1))
    print("| fault | accepted | 503 | done | failed | lost or stuck | events != 1 | all ended, s after the fault |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        reasons = "; ".join(f"{n}x {why}" for why, n in r["failed_by_reason"].items())
        print(f"| {r['row']} | {r['accepted']} | {r['answered_503']} | {r['done']} | {r['failed']}"
              f"{' (' + reasons + ')' if reasons else ''} | {len(r['lost_or_stuck'])} | {r['events_not_one']} | "
              f"{r['all_ended_after_fault_s']} |")
    bad = sum(len(r["lost_or_stuck"]) + r["events_not_one"] for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
