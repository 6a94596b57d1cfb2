"""``make bench-memory``: does the worker's resident memory grow with the photos it has processed?

Starts the local stack (as ``make up``: prefork worker, or ``--pool``/``--concurrency``), sends ``--n`` photos
(default 10,000) through the real service with ``--in-flight`` uploads outstanding (closed loop, paced by the
completion events), and samples the resident set size (VmRSS) of every worker process after ``--baseline``
photos (default 100), every ``--every`` photos and at the end. Prints the growth from the baseline to the end
in percent and writes ``memory.json`` and ``memory.png`` under ``--out``. Numbers only: nothing is asserted.

    python scripts/bench/bench_memory.py [--n 10000] [--baseline 100] [--concurrency 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import redis
from tqdm import tqdm

from plateveil.schema import DEFAULT_EVENT_STREAM
from plateveil_ops.stack import Stack

ROOT = Path(__file__).resolve().parents[2]


def group_rss_kib(pgid: int) -> dict[int, int]:
    """{pid: VmRSS KiB} of the live processes of process group ``pgid``."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                out[int(stat.parent.name)] = int(line.split()[1])
    return out


def load_photos(args: argparse.Namespace) -> list[bytes]:
    root = Path(args.data_root)
    if root.is_dir() and not args.generated:
        files = sorted((root / "ro-dashcam" / "images").glob("*.jpg"))[:150] + \
            sorted((root / "oi-streets" / "images").glob("*.jpg"))[:150]
        # shuffled, so that the first photos are a mix of sizes like any stretch of real traffic (new photo
        # sizes bring new detector input shapes: anchors and runtime buffers, allocated once per shape)
        random.Random(args.seed).shuffle(files)
        if files:
            return [p.read_bytes() for p in files]
    from plateveil_ops.samples import render_scene

    return [render_scene(i, (1600, 1200)).jpeg() for i in range(20)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="photos in all")
    parser.add_argument("--baseline", type=int, default=100, help="the reference sample is taken after this many")
    parser.add_argument("--every", type=int, default=250, help="sample every this many photos")
    parser.add_argument("--in-flight", type=int, default=4, help="uploads outstanding")
    parser.add_argument("--pool", default="prefork")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--generated", action="store_true")
    parser.add_argument("--seed", type=int, default=0, help="photo order")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench-memory"))
    args = parser.parse_args(argv)
    if args.n <= args.baseline:
        raise SystemExit("--n must exceed --baseline")
    photos = load_photos(args)
    # one client standing for many: its API key's rate limit must not pace the photos
    env = {"PLATEVEIL_RATE_PER_S": "100000", "PLATEVEIL_RATE_BURST": "100000"} | dict(
        pair.split("=", 1) for pair in args.worker_env)
    state = Path(tempfile.mkdtemp(prefix="bench-memory-stack-"))
    stack = Stack(state_dir=state, pool=args.pool, concurrency=args.concurrency, extra_env=env)
    print(f"{len(photos)} distinct photos; starting the local stack (worker --pool {args.pool} --concurrency "
          f"{args.concurrency}); logs in {state / 'logs'}")
    stack.start(timeout=120)
    samples: list[dict[str, Any]] = []
    failed = 0
    try:
        worker_pgid = next(s.pid for s in stack.services if s.name == "worker")
        events = redis.Redis.from_url(stack.redis_url, decode_responses=True)
        last: Any = events.xrevrange(DEFAULT_EVENT_STREAM, count=1)
        last_id = last[0][0] if last else "0-0"
        http = httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {stack.api_key}"}, timeout=60)
        sent = done = 0
        lock = threading.Lock()
        bar = tqdm(total=args.n, unit="photo", file=sys.stderr, mininterval=5.0)
        t0 = time.time()

        def sample() -> None:
            rss = group_rss_kib(worker_pgid)
            samples.append({"photos": done, "t_s": round(time.time() - t0, 1), "rss_kib": rss,
                            "max_kib": max(rss.values()), "total_kib": sum(rss.values()),
                            "loadavg": [round(v, 2) for v in os.getloadavg()]})

        while done < args.n:
            while sent < args.n and sent - done < args.in_flight:
                resp = http.post("/v1/photos", content=photos[sent % len(photos)],
                                 headers={"Content-Type": "image/jpeg"})
                if resp.status_code != 202:
                    raise SystemExit(f"upload failed: HTTP {resp.status_code} {resp.text[:200]}")
                sent += 1
            reply: Any = events.xread({DEFAULT_EVENT_STREAM: last_id}, block=30_000, count=100)
            if not reply:
                raise SystemExit(f"no completion for 30 s after {done} photos; see {state / 'logs'}")
            for _, entries in reply:
                for entry_id, fields in entries:
                    last_id = entry_id
                    with lock:
                        before = done
                        done += 1
                        failed += fields.get("status") != "done"
                    bar.update(1)
                    if before < args.baseline <= done or (done > args.baseline and done % args.every == 0):
                        sample()
        bar.close()
        sample()
        http.close()
        events.close()
    finally:
        stack.stop()
    base = next(s for s in samples if s["photos"] >= args.baseline)
    end = samples[-1]
    growth_max = 100.0 * (end["max_kib"] - base["max_kib"]) / base["max_kib"]
    growth_total = 100.0 * (end["total_kib"] - base["total_kib"]) / base["total_kib"]
    report = {"n": args.n, "baseline_after": base["photos"], "failed": failed, "pool": args.pool,
              "concurrency": args.concurrency, "worker_env": env, "samples": samples,
              "rss_mib_after_baseline": {"largest_process": round(base["max_kib"] / 1024, 1),
                                         "all_worker_processes": round(base["total_kib"] / 1024, 1)},
              "rss_mib_at_end": {"largest_process": round(end["max_kib"] / 1024, 1),
                                 "all_worker_processes": round(end["total_kib"] / 1024, 1)},
              "growth_pct": {"largest_process": round(growth_max, 2), "all_worker_processes": round(growth_total, 2)}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "memory.json").write_text(json.dumps(report, indent=1))
    _plot(samples, out / "memory.png", f"worker RSS, {args.n} photos, --pool {args.pool} -c {args.concurrency}")
    print(f"{args.n} photos ({failed} failed); worker RSS after {base['photos']}: largest process "
          f"{base['max_kib'] / 1024:.1f} MiB, all {base['total_kib'] / 1024:.1f} MiB; after {end['photos']}: "
          f"{end['max_kib'] / 1024:.1f} MiB, all {end['total_kib'] / 1024:.1f} MiB; growth {growth_max:+.2f}% "
          f"(largest), {growth_total:+.2f}% (all); load average at the end {end['loadavg']}")
    print(f"wrote {out / 'memory.json'} and {out / 'memory.png'}")
    return 0


def _plot(samples: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot([s["photos"] for s in samples], [s["max_kib"] / 1024 for s in samples], marker="o", label="largest process")
    ax.plot([s["photos"] for s in samples], [s["total_kib"] / 1024 for s in samples], marker=".", label="all worker processes")
    ax.set_xlabel("photos processed")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
