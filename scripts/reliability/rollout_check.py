"""Jobs per model version while a rollout runs, on a running local stack (``make up``, ``source .stack/env``).

    python scripts/reliability/rollout_check.py [--version 1.10.1] [--rate 4]

A thread uploads the golden set's photos over and over (``--rate`` photos per second) while the
``plateveil models`` commands run one after another, as a user types them: publish the shipped bundle
as ``--version`` and promote it; publish a truncated copy (``--skip-checks``) and promote it with
``--force`` (the workers refuse it); ``rollback`` twice (to the candidate, then to the version before). Prints each command's exit code and time, then
every job's outcome counted by model version (and failures with their errors).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from model_store.bundle import default_model_dir
from model_store.golden import GOLDEN_DIR
from producer.client import PlateveilClient


def command(*argv: str) -> int:
    t0 = time.monotonic()
    done = subprocess.run(["plateveil", "models", *argv], capture_output=True, text=True)
    print(f"$ plateveil models {' '.join(argv)}    # exit {done.returncode} after {time.monotonic() - t0:.1f} s")
    said = done.stdout.splitlines() + [x for x in done.stderr.splitlines() if x.startswith(("error", "refused"))]
    for line in said:
        print(f"  {line[:200]}")
    return done.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="1.10.1-check", help="version the good candidate is published as")
    parser.add_argument("--rate", type=float, default=4.0, help="photos uploaded per second")
    args = parser.parse_args(argv)
    for name in ("API_URL", "API_KEY", "PLATEVEIL_REGISTRY_BUCKET"):
        if not os.environ.get(name):
            print(f"{name} is not set: run 'make up' and 'source .stack/env' first", file=sys.stderr)
            return 2
    photos = sorted((GOLDEN_DIR / "images").glob("*.jpg"))
    job_ids: list[str] = []
    stop = threading.Event()

    def upload() -> None:
        with PlateveilClient(os.environ["API_URL"], os.environ["API_KEY"]) as client:
            i = 0
            while not stop.is_set():
                job_ids.append(client.submit_photo(photos[i % len(photos)].read_bytes())["job_id"])
                i += 1
                stop.wait(1.0 / args.rate)

    uploader = threading.Thread(target=upload, daemon=True)
    uploader.start()
    broken = Path(tempfile.mkdtemp(prefix="plateveil-broken-"))
    try:
        for f in default_model_dir().iterdir():
            shutil.copyfile(f, broken / f.name)
        (broken / "detector.onnx").write_bytes((default_model_dir() / "detector.onnx").read_bytes()[:100_000])
        time.sleep(3)
        command("publish", str(default_model_dir()), "--version", args.version)
        command("promote", args.version)
        time.sleep(3)
        command("publish", str(broken), "--version", args.version + "-broken", "--skip-checks")
        command("promote", args.version + "-broken", "--force", "--wait", "30")
        time.sleep(3)
        command("rollback")  # to the good candidate: the last version the workers served
        time.sleep(3)
        command("rollback")  # and to the version before it
        time.sleep(3)
    finally:
        stop.set()
        uploader.join()
        shutil.rmtree(broken, ignore_errors=True)
    outcomes: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    with PlateveilClient(os.environ["API_URL"], os.environ["API_KEY"]) as client:
        for job_id in job_ids:
            job = client.wait(job_id, timeout=120)
            outcomes[f"{job['status']} {job.get('model')}"] += 1
            if job["status"] != "done":
                errors[str(job.get("error"))] += 1
    print(f"{len(job_ids)} jobs:")
    for outcome, n in sorted(outcomes.items()):
        print(f"  {n:4d} {outcome}")
    for error, n in errors.items():
        print(f"  failed x{n}: {error}")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
