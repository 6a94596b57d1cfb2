"""Do the pipeline's fast paths change any result? Runs every photo through ``conceal_bytes`` twice - the
reference path (full decode, find, conceal, encode) and the fast paths (detector on a JPEG decoded at
reduced scale, lossless output of photos without plates) - and compares what they found and wrote.

    python scripts/bench/check_fast_paths.py [--data-root ../shared/data] [--folders ro-dashcam,oi-streets] [--n 300]
                                       [--reduced-decode]

Prints, and writes to ``--out``/fast_paths.json: photos where the plate count differs, plate polygons
matched by IoU (min/mean), photos written losslessly (the output's pixels must equal the original's),
and for the others the difference outside the plates between the two outputs (both are one re-encode of
the same pixels, so it should be zero). Numbers only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from model_store.runtime import load_model
from plateveil import imaging
from plateveil.pipeline import conceal_bytes

ROOT = Path(__file__).resolve().parents[2]


def polygon_iou(a: np.ndarray, b: np.ndarray) -> float:
    area, _ = cv2.intersectConvexConvex(a.astype(np.float32), b.astype(np.float32))
    union = cv2.contourArea(a.astype(np.float32)) + cv2.contourArea(b.astype(np.float32)) - area
    return float(area / union) if union > 0 else 0.0


def plate_mask(shape: tuple[int, ...], plates: list[np.ndarray], grow: int = 12) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    for quad in plates:
        cv2.fillConvexPoly(mask, np.round(quad).astype(np.int32), 255)
    return cv2.dilate(mask, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)) > 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--folders", default="ro-dashcam,oi-streets")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--style", default="blur")
    parser.add_argument("--reduced-decode", action="store_true", help="compare with the reduced-decode fast path")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench-e2e"))
    args = parser.parse_args(argv)
    root = Path(args.data_root)
    if not root.is_dir():
        print(f"no {root}: nothing to compare")
        return 0
    from model_training.data import load_folder, split_of

    files = [s.path for name in args.folders.split(",") for s in load_folder(root / name)
             if split_of(s) == "val"][: args.n]
    model = load_model()
    rows = []
    for path in tqdm(files, unit="photo", file=sys.stderr, mininterval=2.0):
        data = path.read_bytes()
        ref = conceal_bytes(data, model, style=args.style, fast_paths=False)
        fast = conceal_bytes(data, model, style=args.style, reduced_decode=args.reduced_decode)
        ref_q = [np.asarray(p.polygon) for p in ref.plates]
        fast_q = [np.asarray(p.polygon) for p in fast.plates]
        ious = [max((polygon_iou(q, f) for f in fast_q), default=0.0) for q in ref_q]
        row = {"photo": path.name, "ref_plates": len(ref_q), "fast_plates": len(fast_q),
               "min_iou": round(min(ious), 4) if ious else None,
               "lossless": not fast_q and fast.image_bytes == imaging.strip_jpeg_metadata(data),
               "ref_ms": round(ref.timings_ms["total"], 1), "fast_ms": round(fast.timings_ms["total"], 1)}
        out_fast = imaging.decode(fast.image_bytes).image_bgr
        if row["lossless"]:
            original = imaging.decode(data).image_bgr
            row["lossless_pixels_equal"] = bool(np.array_equal(out_fast, original))
            row["metadata_left"] = any(m in fast.image_bytes[:65536] for m in (b"Exif\x00", b"http://ns.adobe.com/xap"))
        else:
            out_ref = imaging.decode(ref.image_bytes).image_bgr
            outside = ~plate_mask(out_ref.shape, ref_q + fast_q)
            diff = np.abs(out_ref.astype(np.int16) - out_fast.astype(np.int16))[outside]
            row["outside_max_diff"] = int(diff.max()) if diff.size else 0
        rows.append(row)
    differ = [r for r in rows if r["ref_plates"] != r["fast_plates"]]
    ious = [r["min_iou"] for r in rows if r["min_iou"] is not None]
    lossless = [r for r in rows if r["lossless"]]
    summary = {
        "reduced_decode": args.reduced_decode,
        "photos": len(rows),
        "plate_count_differs": len(differ),
        "plates_ref": sum(r["ref_plates"] for r in rows),
        "plates_fast": sum(r["fast_plates"] for r in rows),
        "min_polygon_iou": round(min(ious), 4) if ious else None,
        "mean_min_polygon_iou": round(float(np.mean(ious)), 4) if ious else None,
        "lossless_outputs": len(lossless),
        "lossless_pixels_equal": sum(1 for r in lossless if r["lossless_pixels_equal"]),
        "lossless_with_metadata_left": sum(1 for r in lossless if r["metadata_left"]),
        "reencoded_outside_plates_max_diff": max((r["outside_max_diff"] for r in rows if "outside_max_diff" in r),
                                                 default=None),
        "total_ms_mean_ref": round(float(np.mean([r["ref_ms"] for r in rows])), 1) if rows else None,
        "total_ms_mean_fast": round(float(np.mean([r["fast_ms"] for r in rows])), 1) if rows else None,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"fast_paths{'-reduced' if args.reduced_decode else ''}.json").write_text(json.dumps({"summary": summary, "differ": differ, "photos": rows}, indent=1))
    print(json.dumps(summary, indent=1))
    for r in differ[:10]:
        print(f"  differs: {r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
