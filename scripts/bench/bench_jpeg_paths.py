"""The candidates for "touch only the plate" (issue 37), measured on the listing-size photos: CPU ms per photo
(median over ``--n`` photos, each run ``--repeat`` times, the best of them) of

    today          full decode (OpenCV) + full encode at quality 90 (OpenCV): the whole-photo path
    reduced/2      decode at 1/2 scale in the DCT (OpenCV's IMREAD_REDUCED_COLOR_2 = libjpeg's scale_denom 2)
    region         full-resolution decode of a 400x200 MCU-aligned region around a plate, one-off (plateveil._native;
                   since the coefficients are read once per photo, this includes reading them)
    fdct           forward DCT + quantisation of the changed blocks of a 180x45 solid plate (numpy)
    replace        the original stream with those blocks replaced, one-off (plateveil._native: read_coefficients /
                   write_coefficients; the source's Huffman tables)
    read-coefs     the photo's coefficients read once (jpeg_blocks.Coefficients: the one entropy decode of the path)
    copy-coefs     from them, the detector's copy (pipeline_blocks.detector_copy: n/8 scale + INTER_LINEAR)
    region-coefs   from them, the 400x200 region
    write-coefs    from them, the output written (the blocks above replaced)
    jpegtran-drop  libjpeg-turbo's own tool (Debian libjpeg-turbo-progs): `jpegtran -drop` of the concealed region,
                   encoded first as its own JPEG with the photo's quality (a process per photo, files in /tmp)

    python scripts/bench/bench_jpeg_paths.py [--n 20] [--repeat 3]

Prints a table; CPU time (time.process_time / the child's rusage), so that other processes on the machine move
it less than wall time. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from listing_photos import ensure  # noqa: E402

from plateveil.imaging import jpeg_blocks  # noqa: E402
from plateveil.pipeline_blocks import detector_copy  # noqa: E402


def cpu_ms(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, (time.process_time() - t) * 1000)
    return best


def child_cpu_ms(cmd: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        best = min(best, (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--data-root", type=Path, default=Path(__file__).resolve().parents[2].parent / "shared" / "data")
    args = p.parse_args(argv)
    why = jpeg_blocks.available()
    if why:
        raise SystemExit(why)
    folder, manifest = ensure(data_root=args.data_root)
    files = [folder / ph["file"] for ph in manifest["photos"]][: args.n]
    jpegtran = shutil.which("jpegtran")
    rows: dict[str, list[float]] = {k: [] for k in ("today", "reduced/2", "region", "fdct", "replace",
                                                    "read-coefs", "copy-coefs", "region-coefs", "write-coefs",
                                                    "jpegtran-drop")}
    tmp = Path(tempfile.mkdtemp(prefix="bench-jpeg-"))
    print(f"{len(files)} listing photos ({folder}); load average {os.getloadavg()}")
    for f in files:
        data = f.read_bytes()
        buf = np.frombuffer(data, np.uint8)
        lay = jpeg_blocks.layout(data)
        full = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        rows["today"].append(cpu_ms(lambda b=buf: cv2.imencode(".jpg", cv2.imdecode(b, cv2.IMREAD_COLOR),
                                                               [cv2.IMWRITE_JPEG_QUALITY, 90]), args.repeat))
        rows["reduced/2"].append(cpu_ms(lambda b=buf: cv2.imdecode(b, cv2.IMREAD_REDUCED_COLOR_2), args.repeat))
        cx, cy = lay.width // 2, int(lay.height * 0.7)
        rect = jpeg_blocks.align(lay, cx - 200, cy - 100, cx + 200, cy + 100)
        rows["region"].append(cpu_ms(lambda d=data, r=rect: jpeg_blocks.decode_region(d, r), args.repeat))
        x1, y1, x2, y2 = rect
        before = full[y1:y2, x1:x2]
        after = before.copy()
        px, py = cx - x1 - 90, cy - y1 - 22
        after[py:py + 45, px:px + 180] = (40, 40, 40)
        rows["fdct"].append(cpu_ms(lambda la=lay, r=rect, b=before, a=after: jpeg_blocks.changed_blocks(la, r, b, a),
                                   args.repeat))
        blocks = jpeg_blocks.changed_blocks(lay, rect, before, after)
        rows["replace"].append(cpu_ms(lambda d=data, bl=blocks: jpeg_blocks.replace_blocks(d, bl), args.repeat))
        rows["read-coefs"].append(cpu_ms(lambda d=data: jpeg_blocks.Coefficients(d).close(), args.repeat))
        with jpeg_blocks.Coefficients(data) as coefs:
            rows["copy-coefs"].append(cpu_ms(lambda c=coefs, la=lay: detector_copy(c, la, 640, "eighths"),
                                             args.repeat))
            rows["region-coefs"].append(cpu_ms(lambda c=coefs, la=lay, r=rect: c.decode(r, la.width, la.height),
                                               args.repeat))
            coefs.set_blocks(blocks)
            rows["write-coefs"].append(cpu_ms(coefs.write, args.repeat))
        if jpegtran:
            src, drop, out = tmp / "in.jpg", tmp / "drop.jpg", tmp / "out.jpg"
            src.write_bytes(data)
            t = time.process_time()
            drop.write_bytes(cv2.imencode(".jpg", after, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes())
            enc = (time.process_time() - t) * 1000
            rows["jpegtran-drop"].append(enc + child_cpu_ms(
                [jpegtran, "-copy", "none", "-drop", f"+{x1}+{y1}", str(drop), "-outfile", str(out), str(src)],
                args.repeat))
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'candidate':<15} {'CPU ms p50':>10} {'p95':>8}")
    for k, v in rows.items():
        if v:
            q = np.percentile(v, [50, 95])
            print(f"{k:<15} {q[0]:>10.1f} {q[1]:>8.1f}")
        else:
            print(f"{k:<15} {'(not installed)':>19}")
    print(f"load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
