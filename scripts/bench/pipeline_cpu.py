"""CPU time of the pipeline per photo (``plateveil.pipeline.conceal_bytes`` with the shipped model, default
settings), in this process: p50 / mean over the photos, and over the photos with exactly one plate found.

    python scripts/bench/pipeline_cpu.py [--photos listing|validation] [--n 60] [--repeat 1] [--label NAME]

``time.process_time`` (this process's CPU, all threads): on a shared machine a steadier measure than wall time.
Run it from two checkouts one after the other, several rounds (``PYTHONPATH=<checkout>``), to compare code before
and after a change. ``--json FILE`` appends one line per run. Numbers only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def photo_paths(kind: str, n: int) -> list[Path]:
    if kind == "listing":
        sys.path.insert(0, str(ROOT / "scripts" / "bench"))
        from listing_photos import ensure

        folder, manifest = ensure()
        paths = [folder / p["file"] for p in manifest["photos"]]
    else:   # issue 26's 1024-px set: the oi-streets and ro-dashcam photos of at least 1024 px
        from model_training.data import load_split

        val = load_split(ROOT.parent / "shared" / "data", reviewed=False)[1]
        paths = [s.path for s in val if s.source in ("oi-streets", "ro-dashcam")]
    return paths[:n] if n else paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", choices=["listing", "validation"], default="listing")
    p.add_argument("--n", type=int, default=60)
    p.add_argument("--repeat", type=int, default=1, help="passes over the photos (the best CPU of each kept)")
    p.add_argument("--label", default="")
    p.add_argument("--json", help="append the result as one JSON line to this file")
    args = p.parse_args(argv)

    import cv2

    from model_store.runtime import load_model
    from plateveil.pipeline import conceal_bytes

    threads = int(os.environ.get("PLATEVEIL_THREADS", "1"))
    cv2.setNumThreads(threads)
    model = load_model(threads=threads)
    datas = [path.read_bytes() for path in photo_paths(args.photos, args.n)]
    for d in datas[:3]:
        conceal_bytes(d, model)
    best = [float("inf")] * len(datas)
    plates = [0] * len(datas)
    for _ in range(args.repeat):
        for i, d in enumerate(datas):
            t = time.process_time()
            out = conceal_bytes(d, model)
            best[i] = min(best[i], (time.process_time() - t) * 1000)
            plates[i] = len(out.plates)
    cpu = np.asarray(best)
    one = cpu[np.asarray(plates) == 1]
    res = {"label": args.label, "photos": args.photos, "n": len(datas), "load": round(os.getloadavg()[0], 2),
           "cpu_ms_p50": round(float(np.median(cpu)), 1), "cpu_ms_mean": round(float(cpu.mean()), 1),
           "one_plate_n": int(one.size), "one_plate_cpu_ms_p50": round(float(np.median(one)), 1) if one.size else None,
           "one_plate_cpu_ms_mean": round(float(one.mean()), 1) if one.size else None}
    print(json.dumps(res))
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
