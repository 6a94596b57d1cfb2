"""The detector's copy of a photo on the plate-blocks path (``plateveil.pipeline_blocks.DETECTOR_COPY``), two ways,
on the validation split of every data folder, as ``make eval`` scores it: per folder recall@0.8 / spurious per
image for each way, every labelled plate whose coverage crosses 0.8 between them and every photo whose spurious
count changes (named, to be looked at), and the CPU per photo of each (the two ways run one after the other on
each photo, so a busy machine weighs on both alike).

    python scripts/bench/compare_detector_copy.py [--a halves] [--b eighths] [--limit N] [--out DIR]
    python scripts/bench/compare_detector_copy.py --photos listing    # bench-e2e's listing-size photos, with
                                                                      # their source photos' labels scaled

Writes ``differences.json`` under ``--out``. Numbers only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def listing_samples(val: list) -> list:
    """The listing-size photos (scripts/bench/listing_photos.py: upscaled validation photos) with their source
    photos' labels scaled to them."""
    import dataclasses

    from PIL import Image

    sys.path.insert(0, str(ROOT / "scripts" / "bench"))
    from listing_photos import ensure

    folder, manifest = ensure()
    by_name = {f"{s.source.split('/')[0]}/{s.path.name}": s for s in val}
    out = []
    for photo in manifest["photos"]:
        src = by_name.get(photo["source"])
        if src is None:
            continue
        with Image.open(src.path) as a, Image.open(folder / photo["file"]) as b:
            k = max(b.size) / max(a.size)
        out.append(dataclasses.replace(src, path=folder / photo["file"], boxes=src.boxes * k,
                                       corners=src.corners * k, ignore=src.ignore * k,
                                       negatives=src.negatives * k, source=f"listing/{src.source}", _cache={}))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--a", default="halves")
    p.add_argument("--b", default="eighths")
    p.add_argument("--limit", type=int, default=0, help="first N photos only (0: all)")
    p.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--photos", choices=["val", "listing"], default="val")
    p.add_argument("--out", default=str(ROOT / "runs" / "detector-copy"))
    args = p.parse_args(argv)

    from model_store.runtime import load_model
    from model_training.data import load_split
    from model_training.evaluate import ImageResult, score_image, summarise
    from plateveil import pipeline_blocks
    from plateveil.pipeline import conceal_bytes

    samples = load_split(args.data_root, reviewed=True)[1]
    if args.photos == "listing":
        samples = listing_samples(samples)
    if args.limit:
        samples = samples[:args.limit]
    model = load_model()
    ways = (args.a, args.b)
    results: dict[str, list[ImageResult]] = {w: [] for w in ways}
    cpu: dict[str, list[float]] = {w: [] for w in ways}
    for s in samples:
        data = s.path.read_bytes()
        for way in ways:
            pipeline_blocks.DETECTOR_COPY = way
            t = time.process_time()
            out = conceal_bytes(data, model, style="none")
            cpu[way].append((time.process_time() - t) * 1000)
            polys = [np.asarray(q.polygon, dtype=np.float64) for q in out.plates]
            cov, sp, sp_area, ex, ex_t, pa = score_image((out.height, out.width), s.boxes, polys, s.ignore)
            results[way].append(ImageResult(s, polys, cov, sp, sp_area, ex, ex_t, pa, float(out.timings_ms["total"])))
    folders: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        folders[s.source].append(i)
    print(f"{len(samples)} validation photos; {args.a} vs {args.b}")
    print(f"{'folder':26s} {'photos':>6s} {'plates':>6s}  {'rec@0.8 a':>9s} {'b':>7s}  {'spur/img a':>10s} {'b':>7s}  "
          f"{'cpu ms a':>8s} {'b':>7s}")
    for name, idx in sorted(folders.items()) + [("OVERALL", list(range(len(samples))))]:
        sa = summarise([results[args.a][i] for i in idx])
        sb = summarise([results[args.b][i] for i in idx])
        ca = float(np.median([cpu[args.a][i] for i in idx]))
        cb = float(np.median([cpu[args.b][i] for i in idx]))
        print(f"{name:26s} {len(idx):6d} {sa['n_plates']:6d}  {sa['recall_08']:9.4f} {sb['recall_08']:7.4f}  "
              f"{sa['spurious_per_image']:10.4f} {sb['spurious_per_image']:7.4f}  {ca:8.1f} {cb:7.1f}")
    diffs = []
    for i, s in enumerate(samples):
        ra, rb = results[args.a][i], results[args.b][i]
        lost = [int(k) for k in np.nonzero((ra.coverage >= 0.8) & (rb.coverage < 0.8))[0]]
        gained = [int(k) for k in np.nonzero((ra.coverage < 0.8) & (rb.coverage >= 0.8))[0]]
        if lost or gained or ra.spurious != rb.spurious:
            diffs.append({"photo": str(s.path), "folder": s.source, "lost_plates": lost, "gained_plates": gained,
                          "coverage_a": [round(float(c), 3) for c in ra.coverage],
                          "coverage_b": [round(float(c), 3) for c in rb.coverage],
                          "spurious_a": ra.spurious, "spurious_b": rb.spurious,
                          "polygons_a": len(ra.polygons), "polygons_b": len(rb.polygons)})
    print(f"\n{len(diffs)} photos differ ({args.b} against {args.a}):")
    for d in diffs:
        print(f"  {d['folder']:20s} {Path(str(d['photo'])).name:40s} lost {d['lost_plates']} gained {d['gained_plates']} "
              f"spurious {d['spurious_a']} -> {d['spurious_b']}  coverage {d['coverage_a']} -> {d['coverage_b']}")
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "differences.json").write_text(json.dumps({"a": args.a, "b": args.b, "differences": diffs}, indent=1))
    print(f"wrote {folder / 'differences.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
