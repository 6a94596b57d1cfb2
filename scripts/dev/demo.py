"""``make demo``: the whole system on this machine, end to end.

Starts a local stack (Redis, moto S3, a worker, the upload service), uploads a folder of photos
through the HTTP API (default: real held-out photos from ``../shared/data`` when it is there, else
generated car scenes), waits for every job, downloads the concealed
photos and sidecars into ``demo-out/`` with a before/after contact sheet, prints per-job results and
latency percentiles, and stops everything it started - also on Ctrl-C or an error.

    python scripts/dev/demo.py [--images DIR | --generated] [--count 12] [--out demo-out] [--style blur]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from model_training.data import DEFAULT_DATA_ROOT, load_split
from plateveil.schema import JobStatus, parse_iso
from plateveil_ops.samples import write_samples
from plateveil_ops.stack import Stack, StackError
from producer.client import PlateveilClient

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def contact_sheet(pairs: list[tuple[str, bytes, bytes | None]], path: Path, thumb_w: int = 320) -> None:
    """One row per photo: the original on the left, the concealed one on the right."""
    rows = []
    for name, before, after in pairs:
        images = []
        for data in (before, after):
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
            if img is None:
                img = np.full((240, thumb_w, 3), 40, np.uint8)
            h = round(img.shape[0] * thumb_w / img.shape[1])
            images.append(cv2.resize(img, (thumb_w, h), interpolation=cv2.INTER_AREA))
        height = max(i.shape[0] for i in images)
        row = np.full((height + 24, thumb_w * 2 + 12, 3), 255, np.uint8)
        row[24:24 + images[0].shape[0], :thumb_w] = images[0]
        row[24:24 + images[1].shape[0], thumb_w + 12:] = images[1]
        cv2.putText(row, f"{name}: before | after", (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                    cv2.LINE_AA)
        rows.append(row)
    width = max(r.shape[1] for r in rows)
    sheet = np.vstack([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])
    cv2.imwrite(str(path), sheet)


def real_photos(dest: Path, count: int) -> list[Path]:
    """Copy ``count`` photos of the validation split (never trained on), taken in turn from each data set,
    into ``dest``; [] when the shared data is not on this machine."""
    if not DEFAULT_DATA_ROOT.is_dir():
        return []
    try:
        _, val = load_split(DEFAULT_DATA_ROOT)
    except Exception as exc:  # a broken data folder must not stop the demo: it falls back to scenes
        print(f"cannot read {DEFAULT_DATA_ROOT} ({exc}); using generated scenes", file=sys.stderr)
        return []
    by_source: dict[str, list[Any]] = {}
    for sample in val:
        by_source.setdefault(sample.source, []).append(sample)
    queues = [sorted(v, key=lambda x: x.path.name) for _, v in sorted(by_source.items())]
    picked: list[Any] = []
    while len(picked) < count and any(queues):
        for q in queues:
            if q and len(picked) < count:
                picked.append(q.pop(len(q) // 2))
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for sample in picked:
        target = dest / f"{sample.source.replace('/', '-')}-{sample.path.name}"
        shutil.copyfile(sample.path, target)
        out.append(target)
    return out


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.images:
        photos = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not photos:
            print(f"no photos ({', '.join(sorted(IMAGE_SUFFIXES))}) in {args.images}", file=sys.stderr)
            return 2
    elif not args.generated and (real := real_photos(out / "input", args.count)):
        photos = real
        print(f"{len(photos)} real held-out photos (validation split of {DEFAULT_DATA_ROOT}) in {out / 'input'}")
    else:
        photos = write_samples(out / "input", args.count, seed=args.seed)
        print(f"generated {len(photos)} sample photos in {out / 'input'}")

    t0 = time.monotonic()
    with Stack(state_dir=Path(args.state_dir), pool="prefork", concurrency=args.concurrency) as stack:
        print(f"stack up in {time.monotonic() - t0:.1f} s: API {stack.api_url} (docs {stack.api_url}/docs)")
        s3 = stack.s3_client()
        with PlateveilClient(stack.api_url, stack.api_key) as client:
            submitted: list[tuple[Path, dict[str, Any]]] = []
            t_submit = time.monotonic()
            for photo in photos:
                submitted.append((photo, client.submit_photo(photo, style=args.style)))
            print(f"submitted {len(submitted)} photos in {time.monotonic() - t_submit:.2f} s; waiting...")
            deadline = time.monotonic() + args.timeout
            results: list[tuple[Path, dict[str, Any]]] = []
            for photo, accepted in submitted:
                remaining = max(deadline - time.monotonic(), 1.0)
                results.append((photo, client.wait(accepted["job_id"], timeout=remaining, poll=0.05)))

        pairs, latencies, worker_ms = [], [], []
        print(f"\n{'photo':<16} {'status':<7} {'plates':>6} {'latency':>9} {'worker':>8}  output / error")
        for photo, job in results:
            after = None
            if job["status"] == JobStatus.DONE:
                after = s3.get_object(Bucket=job["output_bucket"], Key=job["output_key"])["Body"].read()
                sidecar = s3.get_object(Bucket=job["output_bucket"], Key=job["sidecar_key"])["Body"].read()
                suffix = Path(job["output_key"]).suffix
                (out / f"{photo.stem}.concealed{suffix}").write_bytes(after)
                (out / f"{photo.stem}.concealed{suffix}.json").write_bytes(sidecar)
                latency = (parse_iso(job["completed_at"]) - parse_iso(job["accepted_at"])).total_seconds() * 1000
                latencies.append(latency)
                worker_ms.append(job["timings_ms"].get("total", 0.0))
                print(f"{photo.name:<16} {job['status']:<7} {job['plate_count']:>6} {latency:>7.0f}ms "
                      f"{worker_ms[-1]:>6.0f}ms  s3://{job['output_bucket']}/{job['output_key']}")
            else:
                print(f"{photo.name:<16} {job['status']:<7} {'-':>6} {'-':>9} {'-':>8}  {job['error']}")
            pairs.append((photo.name, photo.read_bytes(), after))
        contact_sheet(pairs, out / "contact-sheet.png")
        model = next((j["model"] for _, j in results if j.get("model")), "?")
        done = sum(j["status"] == JobStatus.DONE for _, j in results)
        print(f"\n{done}/{len(results)} done with model {model}")
        print(f"latency accepted->completed: p50 {percentile(latencies, 50):.0f} ms, "
              f"p95 {percentile(latencies, 95):.0f} ms")
        print(f"worker time per photo:       p50 {percentile(worker_ms, 50):.0f} ms, "
              f"p95 {percentile(worker_ms, 95):.0f} ms")
        print(f"outputs and {out / 'contact-sheet.png'} written; stopping the stack")
        summary = [{"photo": p.name, **{k: j[k] for k in ("job_id", "status", "plate_count", "model", "error",
                                                          "accepted_at", "completed_at", "timings_ms")}}
                   for p, j in results]
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return 0 if done == len(results) else 1


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images",
                        help="folder of your own photos (default: real validation photos, else generated scenes)")
    parser.add_argument("--generated", action="store_true", help="use generated scenes even when real photos exist")
    parser.add_argument("--count", type=int, default=12, help="how many photos to take or generate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="demo-out")
    parser.add_argument("--style", default=None, help="blur | pixelate | solid | overlay (default: the service's)")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for all jobs")
    parser.add_argument("--state-dir", default=".stack/demo", help="logs of the demo's stack")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    try:
        return run(args)
    except KeyboardInterrupt:
        print("\ninterrupted; the stack was stopped", file=sys.stderr)
        return 130
    except (StackError, TimeoutError) as exc:
        print(f"demo failed: {exc}\n(logs under {args.state_dir}/logs)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
