"""``make soak``: N jobs through the real local stack at saturation, with faults, every job counted.

Starts a local stack (Redis with its append-only file, moto S3, a prefork worker, the upload
service), uploads N generated photos as fast as the API takes them (several uploader threads; the
queue stays full), and meanwhile injects faults with real signals: SIGKILL of the worker's main
process or of one of its pool processes at random moments (the worker is started again), and one
Redis restart (SIGTERM, a pause, start again on the same append-only file) half way through the
uploads. Uploads answered 503 while Redis is down are retried by the client and not counted as
accepted. Then it waits until every accepted job ended (or nothing moved for ``--stall-s``) and
counts, from Redis and S3 themselves:

    accepted, done, failed by reason, lost (accepted but neither done nor failed: must be 0),
    duplicate outputs (a job with more than one concealed photo: must be 0), duplicate completion
    events, the oldest queue age seen, throughput, worker kills and Redis restarts

into ``<out>/report.json`` and plots worker memory (RSS of all worker processes) and queue length
over time with the faults marked (``<out>/memory.png``). The exit status is 1 when a job was lost
or done twice.

    python scripts/reliability/soak.py [--n 20000] [--concurrency 2] [--out runs/soak] [--kill-every-s 30]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from plateveil.jobs import OPEN_INDEX
from plateveil.schema import JobStatus
from plateveil_ops.stack import OUTPUT_BUCKET, Stack

logger = logging.getLogger("soak")

# Short timeouts so that killed workers' jobs come back within seconds, not the production 90 s.
SOAK_ENV = {
    "PLATEVEIL_SOFT_TIME_LIMIT_S": "10",
    "PLATEVEIL_HARD_TIME_LIMIT_S": "15",
    "PLATEVEIL_RETRY_BACKOFF_S": "0.5",
    "PLATEVEIL_RETRY_BACKOFF_MAX_S": "4",
    "PLATEVEIL_VISIBILITY_TIMEOUT_S": "20",
    "PLATEVEIL_RESTORE_INTERVAL_S": "2",
    "PLATEVEIL_RETRY_WINDOW_S": "600",
    "PLATEVEIL_MAX_RETRIES": "500",
    "PLATEVEIL_RECONCILE_INTERVAL_S": "5",
    "PLATEVEIL_RECONCILE_GRACE_S": "20",
    "PLATEVEIL_ENQUEUE_TIMEOUT_S": "2",
    "PLATEVEIL_S3_MAX_ATTEMPTS": "2",
    "PLATEVEIL_S3_CONNECT_TIMEOUT_S": "1",
    "PLATEVEIL_S3_READ_TIMEOUT_S": "3",
    "PLATEVEIL_WEBHOOK_BACKOFF_MAX_S": "10",
    "PLATEVEIL_RATE_PER_S": "1000",  # one client at saturation: the per-key rate limit is not what is tested
    "PLATEVEIL_RATE_BURST": "1000",
}


@dataclass
class Run:
    accepted: list[str] = field(default_factory=list)
    rejected_503: int = 0
    rejected_other: Counter[str] = field(default_factory=Counter)
    faults: list[tuple[float, str]] = field(default_factory=list)
    samples: list[dict[str, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    uploads_done: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    t0: float = field(default_factory=time.monotonic)

    def mark(self, what: str) -> None:
        with self.lock:
            self.faults.append((time.monotonic() - self.t0, what))
        logger.info("fault at %.0f s: %s", time.monotonic() - self.t0, what)


def photos(k: int = 8) -> list[bytes]:
    from plateveil_ops.samples import render_scene

    return [render_scene(seed=s, size=(480, 360)).jpeg() for s in range(k)]


def uploader(stack: Stack, run: Run, todo: Iterator[int], images: list[bytes]) -> None:
    headers = {"Authorization": f"Bearer {stack.api_key}", "Content-Type": "image/jpeg"}
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as client:
        for i in todo:
            while not run.stop.is_set():
                try:
                    resp = client.post("/v1/photos", content=images[i % len(images)])
                except httpx.HTTPError as exc:  # the API itself is fine; a reset under load: retry
                    with run.lock:
                        run.rejected_other[type(exc).__name__] += 1
                    time.sleep(0.5)
                    continue
                if resp.status_code == 202:
                    with run.lock:
                        run.accepted.append(resp.json()["job_id"])
                    break
                if resp.status_code in (429, 503):  # rate limited / dependency down: not accepted, retried
                    with run.lock:
                        if resp.status_code == 503:
                            run.rejected_503 += 1
                        else:
                            run.rejected_other["429 (retried)"] += 1
                    time.sleep(min(float(resp.headers.get("Retry-After", "1")), 1.0))
                    continue
                with run.lock:
                    run.rejected_other[str(resp.status_code)] += 1
                break


def worker_rss_mb(stack: Stack) -> float:
    """RSS of every process in the worker's process group (main + pool), in MB."""
    try:
        pgid = stack.service("worker").pid
    except Exception:
        return 0.0
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            for line in (stat.parent / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1024


def pool_pids(stack: Stack) -> list[int]:
    main = stack.service("worker").pid
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == main:  # ppid
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def monitor(stack: Stack, run: Run, queue: str) -> None:
    client = stack.redis_client()
    while not run.stop.wait(1.0):
        sample: dict[str, float] = {"t": time.monotonic() - run.t0, "rss_mb": worker_rss_mb(stack)}
        try:
            pipe = client.pipeline()
            pipe.llen(queue)
            pipe.zrange(OPEN_INDEX, 0, 0, withscores=True)
            pipe.zcard(OPEN_INDEX)
            pipe.xlen("plateveil:events")
            queued, oldest, open_n, finished = pipe.execute()
            sample |= {"queue": float(queued), "open": float(open_n), "finished_events": float(finished),
                       "oldest_open_age_s": max(0.0, time.time() - oldest[0][1]) if oldest else 0.0}
        except Exception:  # Redis restarting
            pass
        with run.lock:
            run.samples.append(sample)


def faults(stack: Stack, run: Run, n: int, kill_every_s: float, redis_restart: bool, rng: random.Random) -> None:
    restarted = not redis_restart
    next_kill = time.monotonic() + rng.uniform(0.5, 1.5) * kill_every_s
    while not run.stop.wait(0.5):
        with run.lock:
            progress = len(run.accepted)
        if not restarted and progress >= n // 2:
            run.mark("redis restart")
            stack.stop_service("redis")
            time.sleep(5)
            stack.start_service("redis")
            restarted = True
        if kill_every_s > 0 and time.monotonic() >= next_kill:
            pool = pool_pids(stack)
            if pool and rng.random() < 0.5:
                os.kill(rng.choice(pool), signal.SIGKILL)
                run.mark("SIGKILL pool process")
            else:
                stack.kill("worker", signal.SIGKILL)
                run.mark("SIGKILL worker main process")
                time.sleep(rng.uniform(1, 7))
                stack.start_service("worker", timeout=120)
            next_kill = time.monotonic() + rng.uniform(0.5, 1.5) * kill_every_s


def wait_finished(stack: Stack, run: Run, stall_s: float) -> None:
    from tqdm import tqdm

    client = stack.redis_client()
    total = len(run.accepted)
    last, last_change = -1, time.monotonic()
    with tqdm(total=total, desc="finished", unit="job", file=sys.stderr, disable=None) as bar:
        while True:
            try:
                left = int(client.zcard(OPEN_INDEX))
            except Exception:
                time.sleep(1)
                continue
            with run.lock:
                total = len(run.accepted)
            bar.total = total
            bar.n = max(0, total - left)
            bar.refresh()
            if run.uploads_done.is_set() and left == 0:
                return
            if left != last:
                last, last_change = left, time.monotonic()
            elif run.uploads_done.is_set() and time.monotonic() - last_change > stall_s:
                logger.warning("nothing finished for %.0f s with %d jobs open: stopping", stall_s, left)
                return
            time.sleep(1)


def count(stack: Stack, ids: list[str]) -> dict[str, Any]:
    client = stack.redis_client()
    statuses: dict[str, tuple[str | None, str | None]] = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        pipe = client.pipeline()
        for job_id in chunk:
            pipe.hmget(f"plateveil:job:{job_id}", ["status", "error"])
        statuses |= {j: (st, err) for j, (st, err) in zip(chunk, pipe.execute(), strict=True)}
    events: Counter[str] = Counter()
    low = "-"
    while True:
        batch = client.xrange("plateveil:events", min=low, count=5000)
        if not batch:
            break
        events.update(fields["job_id"] for _, fields in batch)
        low = "(" + batch[-1][0]
    images: Counter[str] = Counter()
    s3 = stack.s3_client()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=OUTPUT_BUCKET, Prefix="concealed/"):
        for obj in page.get("Contents", []):
            name = obj["Key"].rsplit("/", 1)[-1]
            if not name.endswith(".json"):
                images[name.split(".", 1)[0]] += 1
    done = [j for j, (st, _) in statuses.items() if st == JobStatus.DONE.value]
    failed = {j: err or "" for j, (st, err) in statuses.items() if st == JobStatus.FAILED.value}
    lost = [j for j in ids if j not in failed and statuses[j][0] != JobStatus.DONE.value]
    return {
        "accepted": len(ids),
        "done": len(done),
        "failed": len(failed),
        "failed_by_reason": dict(Counter(_reason_kind(r) for r in failed.values()).most_common()),
        "failed_without_reason": sum(1 for r in failed.values() if not r),
        "lost": len(lost),
        "lost_by_status": dict(Counter(str(statuses[j][0]) for j in lost)),
        "lost_sample": lost[:20],
        "duplicate_outputs": sum(1 for j in done if images[j] > 1),
        "done_without_output": sum(1 for j in done if images[j] == 0),
        "duplicate_events": sum(1 for j in ids if events[j] > 1),
        "missing_events": sum(1 for j in [*done, *failed] if events[j] == 0),
    }


def _reason_kind(reason: str) -> str:
    """A reason without its job-specific parts (keys, numbers), to group failures."""
    import re

    return re.sub(r"s3://\S+|\d+(\.\d+)?", "#", reason)[:160]


def plot(run: Run, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t"] for s in run.samples]
    fig, ax = plt.subplots(figsize=(11, 5))
    ax.plot(t, [s["rss_mb"] for s in run.samples], color="tab:blue", label="worker RSS (MB, all processes)")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("worker memory, MB")
    ax2 = ax.twinx()
    ax2.plot(t, [s.get("queue", float("nan")) for s in run.samples], color="tab:orange", alpha=0.6,
             label="queue length")
    ax2.plot(t, [s.get("open", float("nan")) for s in run.samples], color="tab:green", alpha=0.6,
             label="open jobs")
    ax2.set_ylabel("jobs")
    for at, what in run.faults:
        ax.axvline(at, color="red" if "redis" in what else "grey", alpha=0.5, lw=1,
                   ls="-" if "main" in what or "redis" in what else ":")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", fontsize=8)
    ax.set_title("soak: worker memory and queue (grey: worker kills, solid = main process; red: Redis restart)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="jobs to upload (default 20000)")
    parser.add_argument("--concurrency", type=int, default=2, help="worker pool processes")
    parser.add_argument("--uploaders", type=int, default=4, help="uploading threads")
    parser.add_argument("--kill-every-s", type=float, default=30.0, help="mean seconds between worker kills (0 = none)")
    parser.add_argument("--no-redis-restart", action="store_true", help="do not restart Redis half way")
    parser.add_argument("--stall-s", type=float, default=180.0, help="give up when nothing finished for this long")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/soak"))
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the stack is stopped on a plain kill
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    images = photos()
    run = Run()
    stack = Stack(state_dir=args.out / "stack", pool="prefork", concurrency=args.concurrency,
                  extra_env=dict(SOAK_ENV))
    threads: list[threading.Thread] = []
    try:
        stack.start(timeout=120)
        run.t0 = time.monotonic()
        queue = stack.env.get("PLATEVEIL_QUEUE", "plateveil.conceal")
        threads = [threading.Thread(target=monitor, args=(stack, run, queue), daemon=True),
                   threading.Thread(target=faults, args=(stack, run, args.n, args.kill_every_s,
                                                         not args.no_redis_restart, rng), daemon=True)]
        for th in threads:
            th.start()
        todo = iter(range(args.n))
        lock = threading.Lock()

        def next_items() -> Iterator[int]:
            while True:
                with lock:
                    item = next(todo, None)
                if item is None:
                    return
                yield item

        with ThreadPoolExecutor(args.uploaders) as pool:
            for _ in range(args.uploaders):
                pool.submit(uploader, stack, run, next_items(), images)
        upload_s = time.monotonic() - run.t0
        run.uploads_done.set()
        logger.info("uploaded: %d accepted, %d answered 503 (retried) in %.0f s", len(run.accepted),
                    run.rejected_503, upload_s)
        wait_finished(stack, run, args.stall_s)
        elapsed = time.monotonic() - run.t0
        run.stop.set()
        for th in threads:
            th.join(timeout=60)
        counts = count(stack, run.accepted)
    finally:
        run.stop.set()
        stack.stop()
    rss = [s["rss_mb"] for s in run.samples if s["rss_mb"] > 0]
    report = {
        "n": args.n, "concurrency": args.concurrency, "uploaders": args.uploaders, "seed": args.seed,
        **counts,
        "rejected_503_retried": run.rejected_503, "rejected_other": dict(run.rejected_other),
        "elapsed_s": round(elapsed, 1), "upload_s": round(upload_s, 1),
        "jobs_per_s": round(counts["done"] / elapsed, 2) if elapsed else 0.0,
        "oldest_queue_age_s": round(max((s.get("oldest_open_age_s", 0.0) for s in run.samples), default=0.0), 1),
        "max_queue_length": int(max((s.get("queue", 0.0) for s in run.samples), default=0.0)),
        "worker_kills_main": sum(1 for _, w in run.faults if "main" in w),
        "worker_kills_pool": sum(1 for _, w in run.faults if "pool" in w),
        "redis_restarts": sum(1 for _, w in run.faults if "redis" in w),
        "worker_rss_mb": {"first": round(rss[0], 1) if rss else None, "max": round(max(rss), 1) if rss else None,
                          "last": round(rss[-1], 1) if rss else None},
        "faults": [{"at_s": round(at, 1), "what": what} for at, what in run.faults],
        "plot": str(args.out / "memory.png"),
        "env": SOAK_ENV,
    }
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    (args.out / "samples.json").write_text(json.dumps(run.samples))
    plot(run, args.out / "memory.png")
    summary = {k: report[k] for k in ("accepted", "done", "failed", "failed_by_reason", "lost", "duplicate_outputs",
                                      "duplicate_events", "oldest_queue_age_s", "jobs_per_s", "worker_kills_main",
                                      "worker_kills_pool", "redis_restarts", "worker_rss_mb")}
    print(json.dumps(summary, indent=1))
    print(f"report: {args.out / 'report.json'}, plot: {args.out / 'memory.png'}")
    ok = report["lost"] == 0 and report["duplicate_outputs"] == 0 and report["duplicate_events"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
