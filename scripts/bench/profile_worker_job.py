"""Where a worker's CPU goes per job, outside Celery: ``workers.tasks.run_job`` run in this process against a real
Redis and a real S3 server (moto_server), started on free loopback ports (``plateveil_ops.stack.Stack`` without
worker or API), on the listing-size photos, each handed off through Redis as the upload service does.

    python scripts/bench/profile_worker_job.py [--n 40] [--photos listing|validation] [--env NAME=VALUE ...]

Prints CPU ms per job (``time.process_time``: this process, all threads) for the whole ``run_job`` and for the
pieces it is made of (timed by wrapping them in place): ``conceal_bytes`` (the pipeline), the S3 puts (photo +
sidecar), the job store's Redis calls (mark running, hand-off read, end), the sidecar's JSON, metrics and the job's
log line; "rest" is what is left. ``--cprofile FILE`` also writes a cProfile of the loop. Numbers only.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "bench"))


def _photos(kind: str, n: int) -> list[bytes]:
    if kind == "listing":
        from listing_photos import ensure

        folder, manifest = ensure()
        files = [folder / p["file"] for p in manifest["photos"]]
    else:
        files = sorted((ROOT.parent / "shared" / "data" / "oi-streets").rglob("*.jpg"))
    if not files:
        raise SystemExit(f"no {kind} photos")
    return [files[i % len(files)].read_bytes() for i in range(n)]


class Clock:
    """CPU ms spent inside wrapped callables (outermost wrapper only, so that nested ones are not counted twice)."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = defaultdict(float)
        self.depth = 0

    def wrap(self, name: str, fn: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self.depth:
                return fn(*args, **kwargs)
            self.depth += 1
            t = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.ms[name] += (time.process_time() - t) * 1000
                self.depth -= 1
        return timed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--photos", choices=["listing", "validation"], default="listing")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--cprofile", help="write a cProfile of the measured loop here")
    args = p.parse_args(argv)

    from plateveil_ops.stack import ORIGINALS_BUCKET, Stack

    photos = _photos(args.photos, args.n + args.warmup)
    state = Path(tempfile.mkdtemp(prefix="profile-job-"))
    with Stack(state_dir=state, with_worker=False, with_api=False) as stack:
        os.environ.update(stack.env)
        os.environ.update(dict(kv.split("=", 1) for kv in args.env))
        import json

        import workers.tasks as tasks
        from plateveil import pipeline
        from plateveil.schema import ConcealJob, JobRecord, iso_ms, utc_now
        from plateveil.settings import load_settings
        from plateveil.storage import StoredObject
        from workers.settings import WorkerSettings

        settings = load_settings(WorkerSettings)
        ctx = tasks.WorkerContext.from_settings(settings)
        ctx.models.start()
        clock = Clock()
        # wrap the pieces of run_job where it looks them up
        tasks_conceal = pipeline.conceal_bytes
        pipeline.conceal_bytes = clock.wrap("pipeline (conceal_bytes)", tasks_conceal)
        ctx.store.put = clock.wrap("s3 put (photo + sidecar)", ctx.store.put)   # type: ignore[method-assign]
        ctx.store.get = clock.wrap("s3 get", ctx.store.get)                     # type: ignore[method-assign]
        for name in ("mark_running", "take_upload", "end", "get"):
            setattr(ctx.jobs, name, clock.wrap(f"redis {name}", getattr(ctx.jobs, name)))
        tasks.json = type("J", (), {"dumps": staticmethod(clock.wrap("sidecar json", json.dumps))})  # type: ignore
        tasks.build_sidecar = clock.wrap("sidecar build", tasks.build_sidecar)
        tasks.worker_metrics.job_done = clock.wrap("metrics", tasks.worker_metrics.job_done)
        tasks._ended = clock.wrap("webhook hand-off", tasks._ended)

        def one(data: bytes, i: int) -> None:
            now = utc_now()
            job = ConcealJob(job_id=f"prof-{os.getpid()}-{i}", source_bucket=ORIGINALS_BUCKET,
                             source_key=f"prof/{i}.jpg", output_bucket=settings.output_bucket,
                             output_key=f"prof/{i}.jpg", style=settings.default_style, accepted_at=iso_ms(now))
            stored = ctx.store.put(ORIGINALS_BUCKET, job.source_key, data, "image/jpeg", {})
            ctx.jobs.create(JobRecord.queued(job), upload=StoredObject(stored, data))
            tasks.run_job(job, ctx)

        for i in range(args.warmup):
            one(photos[i], i)
        clock.ms.clear()
        per_job = []
        prof = cProfile.Profile() if args.cprofile else None
        total_pieces: dict[str, float] = defaultdict(float)
        for i, data in enumerate(photos[args.warmup:], start=args.warmup):
            # the original's put and the record's creation are the upload service's work, not the worker's
            now = utc_now()
            job = ConcealJob(job_id=f"prof-{os.getpid()}-{i}", source_bucket=ORIGINALS_BUCKET,
                             source_key=f"prof/{i}.jpg", output_bucket=settings.output_bucket,
                             output_key=f"prof/{i}.jpg", style=settings.default_style, accepted_at=iso_ms(now))
            saved = dict(clock.ms)
            stored_info = type(ctx.store).put(ctx.store, ORIGINALS_BUCKET, job.source_key, data, "image/jpeg", {})
            ctx.jobs.create(JobRecord.queued(job), upload=StoredObject(stored_info, data))
            clock.ms.clear()
            clock.ms.update(saved)
            if prof:
                prof.enable()
            t = time.process_time()
            tasks.run_job(job, ctx)
            per_job.append((time.process_time() - t) * 1000)
            if prof:
                prof.disable()
        for k, v in clock.ms.items():
            total_pieces[k] += v
        n = len(per_job)
        print(f"{n} jobs, {args.photos} photos, load {os.getloadavg()[0]:.1f}; CPU ms per job (process_time)")
        print(f"  run_job total        p50 {statistics.median(per_job):7.1f}  mean {statistics.fmean(per_job):7.1f}")
        accounted = 0.0
        for k, v in sorted(total_pieces.items(), key=lambda kv: -kv[1]):
            accounted += v
            print(f"  {k:28s} mean {v / n:7.2f}")
        print(f"  {'rest of run_job':28s} mean {statistics.fmean(per_job) - accounted / n:7.2f}")
        if prof:
            prof.dump_stats(args.cprofile)
            print(f"wrote {args.cprofile}")
        ctx.models.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
