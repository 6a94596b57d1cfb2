"""Issue 37's checks of "touch only the plate", in one process, on real photos: today's path (``plate_blocks``
off: full decode for the detector, whole-photo re-encode) against the default (reduced-scale decode for the
detector, region decode, only the changed blocks replaced), the two run one after the other on each photo.

For each photo: plates found by each (count; polygons matched by IoU), the output path, whether every decoded
pixel outside the replaced blocks (grown by the one pixel chroma upsampling reaches) is the input's, the output
size against the input's (metadata removed), and the CPU ms of each path (``time.process_time``).

    python scripts/bench/check_plate_blocks.py --photos listing            # the listing-size photos (bench-e2e's)
    python scripts/bench/check_plate_blocks.py --photos val [--folders all] # the validation split, every folder

Prints every photo whose plates differ, and a summary; writes ``--out``/plate_blocks-<photos>.json. Nothing is
asserted (tests/unit/plateveil/test_jpeg_blocks.py proves the guarantees on constructed JPEGs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from listing_photos import ensure  # noqa: E402

from plateveil import imaging  # noqa: E402
from plateveil.imaging import jpeg_blocks  # noqa: E402
from plateveil.pipeline import conceal_bytes  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def iou(a: np.ndarray, b: np.ndarray, shape: tuple[int, int]) -> float:
    x1 = int(max(0, min(a[:, 0].min(), b[:, 0].min()) - 2))
    y1 = int(max(0, min(a[:, 1].min(), b[:, 1].min()) - 2))
    x2 = int(min(shape[1], max(a[:, 0].max(), b[:, 0].max()) + 2))
    y2 = int(min(shape[0], max(a[:, 1].max(), b[:, 1].max()) + 2))
    ma = np.zeros((y2 - y1, x2 - x1), np.uint8)
    mb = ma.copy()
    cv2.fillPoly(ma, [np.round(a - (x1, y1)).astype(np.int32)], 1)
    cv2.fillPoly(mb, [np.round(b - (x1, y1)).astype(np.int32)], 1)
    union = np.logical_or(ma, mb).sum()
    return float(np.logical_and(ma, mb).sum() / union) if union else 1.0


def match(ref: list[np.ndarray], new: list[np.ndarray], shape: tuple[int, int]) -> list[float]:
    """Best IoU of each reference polygon among the new ones (0 when none)."""
    return [max((iou(r, n, shape) for n in new), default=0.0) for r in ref]


def replaced_mask(data_in: bytes, data_out: bytes) -> np.ndarray:
    lay = jpeg_blocks.layout(data_in)
    mask = np.zeros((lay.height, lay.width), bool)
    for c, (a, b) in enumerate(zip(jpeg_blocks.read_blocks(data_in, lay), jpeg_blocks.read_blocks(data_out, lay),
                                   strict=True)):
        h, v = lay.sampling[c]
        bw, bh = 8 * lay.max_h // h, 8 * lay.max_v // v
        for r, k in zip(*np.nonzero(np.any(a != b, axis=2)), strict=True):
            mask[r * bh:(r + 1) * bh, k * bw:(k + 1) * bw] = True
    if lay.components == 3 and lay.sampling[0] != (1, 1):
        mask = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return mask


def photo_list(args: argparse.Namespace) -> list[tuple[str, bytes]]:
    if args.photos == "listing":
        folder, manifest = ensure(data_root=args.data_root)
        return [(p["file"], (folder / p["file"]).read_bytes()) for p in manifest["photos"]][: args.n]
    from model_training.data import load_folder, split_of

    names = ([p.name for p in sorted(args.data_root.iterdir()) if p.is_dir()] if args.folders == "all"
             else args.folders.split(","))
    out = []
    for name in names:
        for s in load_folder(args.data_root / name):
            if split_of(s) == "val":
                out.append((f"{name}/{s.path.name}", s.path.read_bytes()))
    return out[: args.n]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", choices=["listing", "val"], default="listing")
    p.add_argument("--folders", default="all")
    p.add_argument("--n", type=int, default=100000)
    p.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--style", default="blur")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "plate-blocks")
    args = p.parse_args(argv)
    from model_store.runtime import load_model

    model = load_model(threads=1)
    photos = photo_list(args)
    print(f"{len(photos)} photos ({args.photos}); load average {os.getloadavg()}", flush=True)
    rows: list[dict[str, Any]] = []
    for k, (name, data) in enumerate(photos):
        runs = {}
        order = ("today", "blocks") if k % 2 == 0 else ("blocks", "today")
        for which in order:
            cpu = time.process_time()
            res = conceal_bytes(data, model, style=args.style, plate_blocks=(which == "blocks"))
            runs[which] = (res, (time.process_time() - cpu) * 1000)
        ref, new = runs["today"][0], runs["blocks"][0]
        shape = (new.height, new.width)
        ious = match([np.asarray(q.polygon) for q in ref.plates], [np.asarray(q.polygon) for q in new.plates], shape)
        row: dict[str, Any] = {"photo": name, "bytes": len(data), "size": [new.width, new.height], "plates_today": len(ref.plates),
               "plates_blocks": len(new.plates), "ious": [round(v, 3) for v in ious], "encoding": new.encoding,
               "cpu_ms_today": round(runs["today"][1], 2), "cpu_ms_blocks": round(runs["blocks"][1], 2),
               "timings_blocks": {k2: round(v, 2) for k2, v in new.timings_ms.items()},
               "timings_today": {k2: round(v, 2) for k2, v in ref.timings_ms.items()}}
        if new.encoding.get("path") == "blocks":
            before = imaging.decode(data).image_bgr
            after = imaging.decode(new.image_bytes).image_bgr
            outside = ~replaced_mask(data, new.image_bytes)
            row["pixels_changed_outside"] = int(np.any(before != after, axis=2)[outside].sum())
            stripped = imaging.strip_jpeg_metadata(data) or data
            row["size_ratio"] = round(len(new.image_bytes) / len(stripped), 4)
        rows.append(row)
        differs = len(ref.plates) != len(new.plates) or any(v < 0.5 for v in ious)
        if differs:
            print(f"DIFFERS {name}: today {len(ref.plates)} plates, blocks {len(new.plates)}; IoU {row['ious']}",
                  flush=True)
    blocks = [r for r in rows if r["encoding"].get("path") == "blocks"]
    one = [r for r in blocks if r["plates_blocks"] == 1]
    summary = {
        "photos": len(rows), "load_average_end": os.getloadavg(),
        "plates_today": sum(r["plates_today"] for r in rows), "plates_blocks": sum(r["plates_blocks"] for r in rows),
        "photos_plate_count_differs": sum(r["plates_today"] != r["plates_blocks"] for r in rows),
        "polygons_iou_below_0.5": sum(v < 0.5 for r in rows for v in r["ious"]),
        "polygons_iou_below_0.9": sum(v < 0.9 for r in rows for v in r["ious"]),
        "paths": {k: sum(r["encoding"].get("path") == k for r in rows) for k in ("blocks", "lossless", "reencoded")},
        "reasons": sorted({r["encoding"].get("reason", "") for r in rows if r["encoding"].get("reason")}),
        "blocks_outputs_with_pixels_changed_outside": sum(r.get("pixels_changed_outside", 0) > 0 for r in blocks),
        "size_ratio_one_plate": ([round(float(np.min([r["size_ratio"] for r in one])), 4),
                                  round(float(np.median([r["size_ratio"] for r in one])), 4),
                                  round(float(np.max([r["size_ratio"] for r in one])), 4)] if one else None),
        "cpu_ms_p50_today": round(float(np.median([r["cpu_ms_today"] for r in rows])), 1),
        "cpu_ms_p50_blocks": round(float(np.median([r["cpu_ms_blocks"] for r in rows])), 1),
        "cpu_ms_p50_one_plate_today": round(float(np.median([r["cpu_ms_today"] for r in one])), 1) if one else None,
        "cpu_ms_p50_one_plate_blocks": round(float(np.median([r["cpu_ms_blocks"] for r in one])), 1) if one else None,
    }
    for stage in ("decode", "detect", "landmarks", "conceal", "encode", "total"):
        for which in ("today", "blocks"):
            v = [r[f"timings_{which}"][stage] for r in rows]
            summary[f"{stage}_ms_p50_p95_{which}"] = [round(float(x), 1) for x in np.percentile(v, [50, 95])]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"plate_blocks-{args.photos}.json"
    path.write_text(json.dumps({"summary": summary, "photos": rows}, indent=1))
    print(json.dumps(summary, indent=1))
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
