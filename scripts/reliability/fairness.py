"""Fairness and guessing under the issue 27 scenarios, on a local stack (one solo worker):

* client A sends a burst of 100 photos, then client B sends one: B's latency (accepted -> done)
  with A's share of the queue unbounded, then with ``PLATEVEIL_KEY_MAX_INFLIGHT`` (default 10 here);
* 300 wrong-key requests from one address: how many 401 before the 429s start.

    .venv/bin/python scripts/reliability/fairness.py [--share 10] [--burst 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import httpx


def _run(share: int, burst: int, photo: bytes) -> None:
    from plateveil_ops.stack import Stack
    from producer.apikeys import hash_key

    key_a, key_b = "a-" + "x" * 30, "b-" + "y" * 30
    env = {"PLATEVEIL_API_KEY_HASHES": f"client-a:{hash_key(key_a)},client-b:{hash_key(key_b)}",
           "PLATEVEIL_KEY_MAX_INFLIGHT": str(share), "PLATEVEIL_RATE_PER_S": "1000", "PLATEVEIL_RATE_BURST": "1000"}
    with tempfile.TemporaryDirectory() as tmp, Stack(state_dir=Path(tmp), extra_env=env) as stack:
        codes: dict[int, int] = {}
        with httpx.Client(base_url=stack.api_url, timeout=30) as http:
            for _ in range(burst):
                r = http.post("/v1/photos", files={"file": ("a.jpg", photo)}, headers={"Authorization": f"Bearer {key_a}"})
                codes[r.status_code] = codes.get(r.status_code, 0) + 1
            t0 = time.monotonic()
            r = http.post("/v1/photos", files={"file": ("b.jpg", photo)}, headers={"Authorization": f"Bearer {key_b}"})
            job = r.json()["job_id"]
            while http.get(f"/v1/jobs/{job}", headers={"Authorization": f"Bearer {key_b}"}).json()["status"] not in (
                    "done", "failed"):
                time.sleep(0.05)
            waited = time.monotonic() - t0
            guesses: dict[int, int] = {}
            first_429 = None
            for n in range(300):
                g = http.get("/v1/jobs/x", headers={"Authorization": f"Bearer guess-{n}"})
                guesses[g.status_code] = guesses.get(g.status_code, 0) + 1
                if g.status_code == 429 and first_429 is None:
                    first_429 = n
        print(f"share {share:5d}: A's burst of {burst} -> {dict(sorted(codes.items()))}; B's one photo done after "
              f"{waited:.1f} s; 300 wrong keys -> {dict(sorted(guesses.items()))} (first 429 at #{first_429})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--share", type=int, default=10)
    parser.add_argument("--burst", type=int, default=100)
    args = parser.parse_args()
    from plateveil_ops.samples import render_scene

    photo = render_scene(seed=3, size=(800, 600)).jpeg()
    _run(100_000, args.burst, photo)
    _run(args.share, args.burst, photo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
