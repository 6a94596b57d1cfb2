"""Summarise py-spy ``--format raw`` profiles (collapsed stacks "frame;frame;... count"): the share of samples
per leaf-most project/library function and per "bucket" (the first frame matching a pattern, walking from the
leaf), so that the worker's and the API's time can be read by stage.

    python scripts/bench/profile_summary.py runs/profile/worker-*.txt [--top 30]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

# py-spy frames read "function (path:line)"; a stack goes to the first bucket (in this order) one of its frames
# matches, so the pipeline stages win over the task machinery that calls them
BUCKETS = [
    ("decode (reduced/full, region)", r"^(decode|decode_region|_read_header|decode_stage) \(plateveil/"),
    ("detector (onnx + preprocess)", r"^PlateModel.detect \(model_store/runtime.py"),
    ("landmarks (onnx)", r"^PlateModel.refine \(model_store/runtime.py"),
    ("conceal + forward DCT", r"(plateveil/conceal/|^changed_blocks \()"),
    ("block rewrite (libjpeg)", r"^replace_blocks "),
    ("encode (whole photo)", r"^(encode|encode_stage) \(plateveil/"),
    ("lossless strip", r"^strip_jpeg_metadata "),
    ("S3 (boto3/botocore/http)", r"(botocore/|boto3/|urllib3/|plateveil/storage/)"),
    ("Redis", r"(redis/|plateveil/jobs.py)"),
    ("sidecar JSON", r"(json/encoder|json/__init__|build_sidecar)"),
    ("multipart parsing", r"(multipart/|starlette/formparsers)"),
    ("FastAPI/Starlette/pydantic", r"(fastapi/|starlette/|pydantic)"),
    ("logging/metrics", r"(logging/__init__|prometheus_client|/metrics.py)"),
    ("celery/kombu/billiard", r"(celery/|kombu/|billiard/)"),
]
IDLE = re.compile(r"^(select|poll|epoll|_poll|wait|_wait|accept|recv_into|read) \(|\(selectors.py|threading.py")


def parse(path: Path) -> Counter:
    stacks: Counter = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[stack] += int(count)
    return stacks


def bucket_of(frames: list[str]) -> str:
    if IDLE.search(frames[-1]) and not any(re.search(p, f) for _, p in BUCKETS[:7] for f in frames):
        return "idle/blocked (waiting for work or I/O)"
    for name, pattern in BUCKETS:
        rx = re.compile(pattern)
        if any(rx.search(f) for f in frames):
            return name
    return "other"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    total: Counter = Counter()
    for f in args.files:
        total.update(parse(f))
    n = sum(total.values())
    buckets: Counter = Counter()
    leaves: Counter = Counter()
    for stack, c in total.items():
        frames = stack.split(";")
        b = bucket_of(frames)
        buckets[b] += c
        if not b.startswith("idle"):
            leaves[frames[-1]] += c
    busy = sum(c for b, c in buckets.items() if not b.startswith("idle"))
    print(f"{n} samples, {busy} busy ({', '.join(str(f) for f in args.files)})")
    for b, c in buckets.most_common():
        share = f"{100 * c / busy:5.1f}% of busy" if not b.startswith("idle") and busy else ""
        print(f"  {b:<34} {c:>7} {share}")
    print("leaf functions (busy):")
    for leaf, c in leaves.most_common(args.top):
        print(f"  {100 * c / busy:5.1f}%  {leaf[:150]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
