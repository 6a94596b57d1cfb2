"""Listing-size photos for the benchmarks (issue 37): 1280-2048 px long side, 300-900 KB, as sellers upload them.

No folder of ``../shared/data`` has such photos (the largest are the 1280x720 dash-cam frames of ``ro-dashcam``
and the 1024-px street photos of ``oi-streets``, 60-150 KB), so they are made from the held-out ones: the
validation split of ``--folders``, largest first, each upscaled (Lanczos) to a long side drawn in
``--long-side`` and written by libjpeg (Pillow) at a high quality (95, else 92), 4:2:0, with a little sensor-like grain where the smooth upscale compresses
too well, so that the sizes are those of sellers' uploads (about 500 KB, within 300-900 KB). Without ``../shared/data``, generated scenes (``plateveil_ops.samples``) are used the same way. The
photos are cached under ``runs/bench-photos/listing/`` (with ``manifest.json``); a second call reuses them.

    python scripts/bench/listing_photos.py [--n 60] [--data-root ../shared/data] [--out runs/bench-photos/listing]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "runs" / "bench-photos" / "listing"
SHARED_DATA = ROOT.parent / "shared" / "data"
QUALITIES = (95, 92)
GRAINS = (0.0, 1.5, 3.0, 4.5, 6.0)
TARGET_KB = 500


def _encode(rgb: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality, subsampling=2)
    return buf.getvalue()


def upscale_to_listing(rgb: np.ndarray, long_side: int, size_kb: tuple[int, int], seed: int = 0
                       ) -> tuple[bytes, int, float]:
    """(JPEG bytes, quality, grain) of ``rgb`` upscaled to ``long_side``. An upscaled photo is smoother than a
    camera's, so a little sensor-like grain (Gaussian, ``grain`` levels) is added until the file is about the
    size of a seller's upload: the one nearest ``TARGET_KB`` within ``size_kb``."""
    import cv2

    h, w = rgb.shape[:2]
    s = long_side / max(h, w)
    big = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_LANCZOS4)
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(big.shape, dtype=np.float32)
    best: tuple[bytes, int, float] | None = None
    for grain in GRAINS:
        img = big if grain == 0 else np.clip(big + grain * noise, 0, 255).astype(np.uint8)
        for q in QUALITIES:
            data = _encode(img, q)
            if best is None or abs(len(data) - TARGET_KB * 1000) < abs(len(best[0]) - TARGET_KB * 1000):
                best = (data, q, grain)
            if abs(len(data) - TARGET_KB * 1000) <= 120_000:
                return data, q, grain
    assert best is not None
    return best


def sources(data_root: Path, folders: str, n: int) -> list[tuple[str, np.ndarray]]:
    """The largest ``n`` validation photos of ``folders`` (RGB), or generated scenes without the data."""
    from PIL import Image

    if data_root.is_dir():
        from model_training.data import load_folder, split_of

        found = []
        for name in folders.split(","):
            folder = data_root / name.strip()
            if not folder.is_dir():
                continue
            for sample in load_folder(folder):
                if split_of(sample) != "val":
                    continue
                with Image.open(sample.path) as im:
                    found.append((im.size[0] * im.size[1], f"{name}/{sample.path.name}", sample.path))
        found.sort(key=lambda t: (-t[0], t[1]))
        if found:
            out = []
            for _, name, path in found[:n]:
                with Image.open(path) as im:
                    out.append((name, np.asarray(im.convert("RGB"))))
            return out
    from plateveil_ops.samples import render_scene

    return [(f"scene-{i:03d}.jpg", render_scene(i, (1600, 1200)).image_bgr[:, :, ::-1].copy()) for i in range(min(n, 20))]


def ensure(n: int = 60, data_root: Path = SHARED_DATA, folders: str = "ro-dashcam,oi-streets",
           out: Path = DEFAULT_OUT, long_side: tuple[int, int] = (1280, 2048), size_kb: tuple[int, int] = (300, 900),
           seed: int = 0) -> tuple[Path, dict]:
    """The cached listing-size photos (made on the first call): (folder, manifest)."""
    manifest_path = out / "manifest.json"
    wanted = {"n": n, "folders": folders, "long_side": list(long_side), "size_kb": list(size_kb), "seed": seed,
              "data_root_found": data_root.is_dir()}
    if manifest_path.exists():
        cached: dict[str, Any] = json.loads(manifest_path.read_text())
        if cached.get("params") == wanted and all((out / p["file"]).exists() for p in cached["photos"]):
            return out, cached
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    photos: list[dict[str, Any]] = []
    srcs = sources(data_root, folders, n)
    for i, (name, rgb) in enumerate(srcs):
        side = int(rng.integers(long_side[0], long_side[1] + 1))
        data, quality, grain = upscale_to_listing(rgb, side, size_kb, seed + i)
        file = f"{i:03d}-{Path(name).stem}.jpg"
        (out / file).write_bytes(data)
        photos.append({"file": file, "source": name, "long_side": side, "quality": quality, "grain": grain,
                       "bytes": len(data)})
    sizes = sorted(int(p["bytes"]) for p in photos)
    manifest: dict[str, Any] = {"params": wanted, "photos": photos,
                "made_from": "validation photos of " + folders + " upscaled" if data_root.is_dir()
                else "generated scenes (no ../shared/data) upscaled",
                "median_kb": sizes[len(sizes) // 2] / 1000 if sizes else 0}
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return out, manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=60)
    p.add_argument("--data-root", type=Path, default=SHARED_DATA)
    p.add_argument("--folders", default="ro-dashcam,oi-streets")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    out, manifest = ensure(args.n, args.data_root, args.folders, args.out)
    sizes = [ph["bytes"] for ph in manifest["photos"]]
    print(f"{len(sizes)} photos in {out}: {manifest['made_from']}; {min(sizes) / 1000:.0f}-{max(sizes) / 1000:.0f} KB, "
          f"median {manifest['median_kb']:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
